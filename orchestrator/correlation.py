"""The request id: one id per API request, carried to everything that request causes.

The API takes it from the `X-Correlation-ID` header (or makes one) and echoes it; the events the request
appends record it in their metadata, a run's outbox rows carry the id of the request that created the run,
the relay puts it in the Celery message, and the worker binds it for the attempt, so the attempt's events
and log lines name it too. It is `request_id` in logs and metadata because event metadata has always had a
`correlation_id`, the run tree's root run, and that meaning stays.

A leaf: the standard library and structlog only. The id is ambient (a context variable) rather than an
argument, because every write path and log line of a request or a job should carry it, and threading
a parameter through each one would miss some.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import structlog

HEADER = "X-Correlation-ID"
# The event-metadata key and the log field.
KEY = "request_id"
# The Celery message header (a header, not a task argument: a worker that does not know it ignores it).
MESSAGE_HEADER = "orch_request_id"
MAX_LENGTH = 128
# Letters, digits and `-._:`: UUIDs, hex, ULIDs and most tracing ids fit, and nothing that could forge
# a log field, a header or a path.
_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")

_current: ContextVar[str | None] = ContextVar("orch_request_id", default=None)


def new_id() -> str:
    return uuid.uuid4().hex


def problem(value: str) -> str | None:
    """Why `value` is not a usable id, or None when it is."""
    if not value:
        return "must not be empty"
    if len(value) > MAX_LENGTH:
        return f"at most {MAX_LENGTH} characters"
    if _SHAPE.fullmatch(value) is None:
        return "letters, digits and - . _ : only, starting with a letter or digit"
    return None


def is_valid(value: str) -> bool:
    return problem(value) is None


def current() -> str | None:
    """The id bound in this context (a request's, or the attempt's a worker runs), if any."""
    return _current.get()


@contextmanager
def bound(request_id: str | None, **log_fields: object) -> Iterator[None]:
    """Bind `request_id` (when there is one) and `log_fields` for the block: the events it appends record
    the id, and its log lines, ours and the libraries', carry both. Unbound again on the way out."""
    token = _current.set(request_id)
    fields = {KEY: request_id, **log_fields} if request_id else dict(log_fields)
    try:
        with structlog.contextvars.bound_contextvars(**fields):
            yield
    finally:
        _current.reset(token)
