"""Spans recorded in memory, for the tracing tests (OpenTelemetry's own in-memory exporter)."""

from __future__ import annotations

from typing import Any

import pytest


def memory_exporter() -> Any:
    """The process's in-memory span exporter, installed as the global tracer provider on first use;
    skips the test when the `otel` extra is not installed or another provider is already set."""
    pytest.importorskip(
        "opentelemetry.sdk.trace", reason="the `otel` extra is not installed (pip install -e '.[otel]')"
    )
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    global _exporter
    if _exporter is None:
        if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            pytest.skip("another tracer provider is set in this process")
        _exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        trace.set_tracer_provider(provider)
    _exporter.clear()
    return _exporter


_exporter: Any = None
