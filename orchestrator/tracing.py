"""OpenTelemetry tracing, optional: the `otel` extra installed and ORCH_OTEL_ENABLED=true.

A request gets a server span; a submission stores the span's context (W3C `traceparent`) with its
outbox row, the relay puts it in the Celery message beside the request id, and the worker's attempt span
is a child of it, so one trace shows the request and every attempt it caused.

Nothing here imports OpenTelemetry until `configure` has enabled it: with tracing off (the default) the
API and the workers neither load nor need it, and every function is a cheap no-op.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import structlog

log = structlog.get_logger(__name__)

# W3C trace context fields, as the propagator writes them into a carrier.
FIELDS = ("traceparent", "tracestate")
TRACER = "orchestrator"

_enabled = False


def enabled() -> bool:
    return _enabled


def configure(on: bool, service_name: str, exporter: str = "otlp") -> bool:
    """Turn tracing on for this process when `on` and the SDK is installed; says whether it is on.

    A tracer provider the process set up already (an embedding application, a test) is kept; otherwise
    one is made that exports in batches, over OTLP (`OTEL_EXPORTER_OTLP_*` configure where to) or to
    stderr with `console`. Call it in each process that serves or runs jobs, after a fork (the batch
    exporter's thread does not survive one)."""
    global _enabled
    if not on:
        _enabled = False
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        log.warning("otel.unavailable", hint="pip install 'orchestrator[otel]'")
        _enabled = False
        return False
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        chosen: SpanExporter
        if exporter == "console":
            chosen = ConsoleSpanExporter()
        else:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                    OTLPSpanExporter,
                )
            except ImportError:
                log.warning("otel.no_exporter", exporter=exporter)
                _enabled = False
                return False
            chosen = OTLPSpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        provider.add_span_processor(BatchSpanProcessor(chosen))
        trace.set_tracer_provider(provider)
    _enabled = True
    return True


def carrier() -> dict[str, str] | None:
    """The current span's context as W3C headers, to store with an outbox row; None when off or none."""
    if not _enabled:
        return None
    from opentelemetry import propagate

    found: dict[str, str] = {}
    propagate.inject(found)
    return {k: v for k, v in found.items() if k in FIELDS} or None


class Handle:
    """What a block may tell its span (nothing happens when tracing is off)."""

    def __init__(self, span: Any = None) -> None:
        self._span = span

    def set(self, name: str, value: str | int | None) -> None:
        if self._span is not None and value is not None:
            self._span.set_attribute(name, value)

    def rename(self, name: str) -> None:
        if self._span is not None:
            self._span.update_name(name)

    def fail(self, reason: str) -> None:
        if self._span is not None:
            from opentelemetry import trace

            self._span.set_status(trace.Status(trace.StatusCode.ERROR, reason))


def parent_of(headers: Mapping[str, Any]) -> dict[str, str]:
    """The W3C trace context fields among `headers` (a message's, a request's)."""
    return {k: v for k, v in headers.items() if k in FIELDS and isinstance(v, str)}


@contextlib.contextmanager
def span(
    name: str, parent: Mapping[str, Any] | None = None, server: bool = False, **attributes: Any
) -> Iterator[Handle]:
    """A span around the block, a child of the context in `parent` (W3C headers) when given; records an
    exception's type, never its message (which may hold SQL or a key). Does nothing when off."""
    if not _enabled:
        yield Handle()
        return
    from opentelemetry import propagate, trace

    context = propagate.extract(parent_of(parent or {}))
    kind = trace.SpanKind.SERVER if server else trace.SpanKind.CONSUMER if parent else trace.SpanKind.INTERNAL
    values = {k: v for k, v in attributes.items() if v is not None}
    with trace.get_tracer(TRACER).start_as_current_span(
        name,
        context=context,
        kind=kind,
        attributes=values,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        handle = Handle(current)
        try:
            yield handle
        except BaseException as exc:
            handle.fail(type(exc).__name__)
            current.set_attribute("error.type", type(exc).__name__)
            raise
