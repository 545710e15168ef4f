"""A request's id, from its `X-Correlation-ID` header through the outbox and the Celery message to the
worker's events and log lines, with the real relay, reconciler and worker processes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from orchestrator import tracing
from orchestrator.api.app import create_app
from orchestrator.settings import Settings
from orchestrator.store.events import RecordedEvent, read_stream
from orchestrator.store.schema import events, outbox
from tests.conftest import System
from tests.services import wait_until
from tests.unit.otel_memory import memory_exporter

pytestmark = pytest.mark.usefixtures("system")


def stream(engine: Engine, run_id: str) -> list[RecordedEvent]:
    with engine.connect() as conn:
        return read_stream(conn, uuid.UUID(run_id))


def request_ids(engine: Engine, run_id: str) -> list[tuple[str, str | None]]:
    return [(e.type, e.metadata.get("request_id")) for e in stream(engine, run_id)]


def ended(engine: Engine, run_id: str, terminal: str) -> bool:
    return any(e.type == terminal for e in stream(engine, run_id))


def worker_lines(system: System, run_id: str) -> list[dict[str, Any]]:
    return [line for line in system.roles["worker"].log_events() if line.get("run_id") == run_id]


def test_the_id_travels_from_the_request_to_the_workers_events_and_logs(
    app_client: TestClient, auth: dict[str, str], engine: Engine, system: System, tenant: str
) -> None:
    request_id = f"req-{uuid.uuid4().hex}"
    headers = {**auth, "X-Correlation-ID": request_id}
    # One transient failure: the second attempt is scheduled by the worker's write, through a new
    # outbox row, so it shows that later dispatches keep the id too.
    body = {"kind": "sleep", "params": {"duration": 0.1, "transient_failures": 1}}
    response = app_client.post("/v1/runs", json=body, headers=headers)
    assert response.status_code == 201, response.text
    assert response.headers["x-correlation-id"] == request_id
    run_id = str(response.json()["id"])
    wait_until(lambda: ended(engine, run_id, "RunSucceeded"), timeout=60, message="the run to succeed")

    recorded = request_ids(engine, run_id)
    types = [t for t, _ in recorded]
    assert types[0] == "RunCreated" and types.count("RunStarted") == 2 and types[-1] == "RunSucceeded"
    assert all(found == request_id for _, found in recorded), recorded
    with engine.connect() as conn:
        rows = conn.execute(sa.select(outbox.c.attempt, outbox.c.request_id).where(outbox.c.run_id == run_id))
        assert sorted(rows) == [(1, request_id), (2, request_id)]

    def both_attempts_logged() -> list[dict[str, Any]]:
        lines = worker_lines(system, run_id)
        done = {line.get("attempt") for line in lines if line.get("event") == "attempt.ended"}
        return lines if done >= {1, 2} else []

    lines = wait_until(both_attempts_logged, timeout=30, message="both attempts' log lines")
    for line in lines:
        assert line["request_id"] == request_id and line["tenant_id"] == tenant, line
        assert line["attempt"] in (1, 2), line


def test_a_cancel_request_records_its_own_id_and_the_job_keeps_the_runs(
    app_client: TestClient, auth: dict[str, str], engine: Engine
) -> None:
    submitted, canceling = f"sub-{uuid.uuid4().hex}", f"cancel-{uuid.uuid4().hex}"
    body = {"kind": "sleep", "params": {"duration": 30, "steps": 30}}
    response = app_client.post("/v1/runs", json=body, headers={**auth, "X-Correlation-ID": submitted})
    run_id = str(response.json()["id"])
    wait_until(lambda: any(t == "RunStarted" for t, _ in request_ids(engine, run_id)), message="a start")
    cancel = app_client.post(f"/v1/runs/{run_id}/cancel", headers={**auth, "X-Correlation-ID": canceling})
    assert cancel.status_code == 200 and cancel.headers["x-correlation-id"] == canceling
    wait_until(lambda: ended(engine, run_id, "RunCanceled"), timeout=30, message="the cancel")
    by_type = dict(request_ids(engine, run_id))
    assert by_type["RunCreated"] == by_type["RunStarted"] == submitted
    assert by_type["CancelRequested"] == canceling
    assert by_type["RunCanceled"] == submitted  # confirmed by the job, which works for the submission


def test_a_dispatch_the_broker_lost_is_republished_with_its_id(
    app_client: TestClient, auth: dict[str, str], engine: Engine
) -> None:
    """The reconciler's re-publish of a dispatch that never started carries the original request id."""
    request_id = f"lost-{uuid.uuid4().hex}"
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    body = {"kind": "sleep", "params": {"duration": 0}, "not_before": later}  # the relay leaves it alone
    response = app_client.post("/v1/runs", json=body, headers={**auth, "X-Correlation-ID": request_id})
    assert response.status_code == 201, response.text
    run_id = str(response.json()["id"])
    with engine.begin() as conn:
        # As if the relay had published it long ago and the broker then lost the message.
        long_ago = sa.func.now() - sa.text("interval '1 hour'")
        conn.execute(
            outbox.update().where(outbox.c.run_id == run_id).values(sent_at=long_ago, not_before=long_ago)
        )
    wait_until(lambda: ended(engine, run_id, "RunSucceeded"), timeout=60, message="the re-published run")
    with engine.connect() as conn:
        rows = list(conn.execute(sa.select(outbox.c.request_id).where(outbox.c.run_id == run_id)))
    assert len(rows) >= 2 and {row.request_id for row in rows} == {request_id}
    assert all(found == request_id for _, found in request_ids(engine, run_id))


def test_a_submission_with_an_unusable_id_is_refused_and_creates_nothing(
    app_client: TestClient, auth: dict[str, str], engine: Engine, tenant: str
) -> None:
    body = {"kind": "sleep", "params": {"duration": 0}}
    response = app_client.post("/v1/runs", json=body, headers={**auth, "X-Correlation-ID": "two words"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "X-Correlation-ID"]
    with engine.connect() as conn:  # the log, not a read model that may lag
        assert conn.execute(sa.select(sa.func.count()).where(events.c.tenant_id == tenant)).scalar() == 0


def test_with_tracing_on_a_submission_stores_its_request_spans_context(
    settings: Settings, engine: Engine, auth: dict[str, str]
) -> None:
    """The outbox row holds the trace context the relay sends on (tests/unit/test_tracing.py follows it
    from the message headers to the worker's span)."""
    spans = memory_exporter()
    try:
        with TestClient(create_app(settings.model_copy(update={"otel_enabled": True}), engine)) as client:
            body = {"kind": "sleep", "params": {"duration": 0}}
            response = client.post("/v1/runs", json=body, headers=auth)
        assert response.status_code == 201, response.text
    finally:
        tracing.configure(False, "orchestrator-test")
    run_id = response.json()["id"]
    (span,) = [s for s in spans.get_finished_spans() if s.name == "POST /v1/runs"]
    assert span.attributes["orch.request_id"] == response.headers["x-correlation-id"]
    with engine.connect() as conn:
        stored = conn.execute(sa.select(outbox.c.trace_context).where(outbox.c.run_id == run_id)).scalar()
    assert stored["traceparent"].split("-")[1:3] == [
        f"{span.context.trace_id:032x}",
        f"{span.context.span_id:016x}",
    ]
