"""Tracing without services: off it does nothing; on, a request's span is the parent of the attempt's,
through the outbox row's trace context and the Celery message headers."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery.app.task import Context
from fastapi import FastAPI
from fastapi.testclient import TestClient

from orchestrator import correlation, tracing
from orchestrator.api.correlation import RequestId
from orchestrator.api.tracing import NO_NATIVE_TELEMETRY, Traced
from orchestrator.api.unhandled import CatchAll
from orchestrator.processes.roles import message_headers
from orchestrator.store.outbox import OutboxMessage
from tests.unit.otel_memory import memory_exporter
from workers.app import attempt_span


@pytest.fixture()
def spans() -> Iterator[Any]:
    exporter = memory_exporter()
    assert tracing.configure(True, "orchestrator-test")  # keeps the provider the test installed
    try:
        yield exporter
    finally:
        tracing.configure(False, "orchestrator-test")


def test_off_it_is_a_no_op_and_loads_nothing() -> None:
    probe = (
        "import sys; from orchestrator import tracing;"
        "tracing.configure(False, 'x');"
        "span = tracing.span('s', parent={'traceparent': 'x'}).__enter__();"
        "span.set('a', 1); span.rename('t');"
        "print(tracing.carrier(), 'opentelemetry.sdk.trace' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "False"]


def _app() -> FastAPI:
    app = FastAPI(telemetry=NO_NATIVE_TELEMETRY)  # as create_app makes it

    @app.get("/things/{thing}")
    def thing(thing: str) -> dict[str, Any]:
        return {"carrier": tracing.carrier()}  # what a submission here would store in its outbox row

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("unhandled")

    app.add_middleware(CatchAll)  # in create_app's order
    app.add_middleware(Traced)
    app.add_middleware(RequestId)
    return app


def test_a_request_has_a_server_span_named_by_its_route(spans: Any) -> None:
    with TestClient(_app(), raise_server_exceptions=False) as client:
        response = client.get("/things/42", headers={correlation.HEADER: "req-span"})
        failed = client.get("/boom")
    (span, boom) = spans.get_finished_spans()
    assert span.name == "GET /things/{thing}" and span.kind.name == "SERVER"
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["http.route"] == "/things/{thing}"
    assert span.attributes["orch.request_id"] == "req-span"
    carrier = response.json()["carrier"]
    trace_id, span_id = f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"
    assert carrier["traceparent"].split("-")[1:3] == [trace_id, span_id]
    assert failed.status_code == 500 and boom.status.status_code.name == "ERROR"


def test_a_callers_traceparent_is_the_request_spans_parent(spans: Any) -> None:
    caller_trace, caller_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    traceparent = f"00-{caller_trace}-{caller_span}-01"
    with TestClient(_app()) as client:
        client.get("/things/1", headers={"traceparent": traceparent})
    (span,) = spans.get_finished_spans()
    assert f"{span.context.trace_id:032x}" == caller_trace
    assert span.parent is not None and f"{span.parent.span_id:016x}" == caller_span


def test_the_attempt_span_is_a_child_of_the_request_span_through_the_message(spans: Any) -> None:
    with TestClient(_app()) as client:
        carrier = client.get("/things/1").json()["carrier"]
    (request_span,) = spans.get_finished_spans()
    # The outbox row keeps the carrier; the relay turns the row into message headers; Celery hands the
    # worker those headers as its task request.
    message = OutboxMessage(1, uuid.uuid4(), "t", 1, "q", "sleep", "req-1", carrier)
    headers = message_headers(message)
    assert headers[correlation.MESSAGE_HEADER] == "req-1" and "traceparent" in headers
    with attempt_span(Context(headers), str(message.run_id), 1, "req-1") as span:
        span.set("orch.outcome", "succeeded")
    attempt = spans.get_finished_spans()[-1]
    assert attempt.name == "orch.execute_run" and attempt.kind.name == "CONSUMER"
    assert attempt.context.trace_id == request_span.context.trace_id
    assert attempt.parent is not None and attempt.parent.span_id == request_span.context.span_id
    assert attempt.attributes["orch.run_id"] == str(message.run_id)
    assert attempt.attributes["orch.outcome"] == "succeeded"


def test_a_message_without_trace_context_starts_a_trace_of_its_own(spans: Any) -> None:
    message = OutboxMessage(1, uuid.uuid4(), "t", 1, "q")
    assert message_headers(message) == {}
    with attempt_span(Context({}), str(message.run_id), 1, None):
        pass
    (attempt,) = spans.get_finished_spans()
    assert attempt.parent is None and "orch.request_id" not in attempt.attributes


def test_a_failing_block_marks_its_span_with_the_error_type_only(spans: Any) -> None:
    with pytest.raises(ValueError), tracing.span("work"):
        raise ValueError("SELECT secret FROM keys")
    (span,) = spans.get_finished_spans()
    assert span.status.status_code.name == "ERROR" and span.status.description == "ValueError"
    assert span.attributes["error.type"] == "ValueError" and not span.events
