"""Runs executed by a real Celery worker process, fed by the real relay, read through the projector."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from orchestrator.processes.roles import celery_publisher
from orchestrator.services import RunService
from orchestrator.settings import Settings
from orchestrator.store.events import read_stream
from orchestrator.store.outbox import OutboxMessage
from tests.conftest import System
from tests.services import wait_until

pytestmark = pytest.mark.usefixtures("system")


def submit(client: TestClient, auth: dict[str, str], **params: Any) -> str:
    response = client.post("/v1/runs", json={"kind": "sleep", "params": params}, headers=auth)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def wait_status(
    client: TestClient, auth: dict[str, str], run_id: str, *wanted: str, timeout: float = 30
) -> dict:  # type: ignore[type-arg]
    def check() -> dict | None:  # type: ignore[type-arg]
        run = client.get(f"/v1/runs/{run_id}", headers=auth).json()
        return run if run["status"] in wanted else None

    return wait_until(check, timeout=timeout, message=f"run {run_id} to be {wanted}")  # type: ignore[no-any-return]


def event_types(client: TestClient, auth: dict[str, str], run_id: str) -> list[str]:
    return [e["type"] for e in client.get(f"/v1/runs/{run_id}/events", headers=auth).json()["data"]]


def test_a_run_succeeds_with_its_events_in_order(
    app_client: TestClient, auth: dict[str, str], system: System
) -> None:
    run_id = submit(app_client, auth)
    try:
        run = wait_status(app_client, auth, run_id, "succeeded")
    except AssertionError:
        print(system.logs())
        raise
    assert run["attempt"] == 1 and run["result"] == {"slept_seconds": 0.0}
    assert run["started_at"] and run["finished_at"]
    events = app_client.get(f"/v1/runs/{run_id}/events", headers=auth).json()["data"]
    assert [e["type"] for e in events] == ["RunCreated", "RunStarted", "RunSucceeded"]
    assert [e["version"] for e in events] == [1, 2, 3]


def test_progress_and_a_requested_failure(app_client: TestClient, auth: dict[str, str]) -> None:
    run_id = submit(app_client, auth, duration=0.3, steps=3, fail=True, fail_code="invalid_output")
    run = wait_status(app_client, auth, run_id, "failed")
    assert run["error_code"] == "invalid_output"
    assert run["error"] == "failure requested by the run's parameters"
    assert run["progress"] == {"done": 3, "total": 3}
    assert event_types(app_client, auth, run_id)[-1] == "RunFailed"


def test_transient_failures_are_retried_by_the_orchestrator(
    app_client: TestClient, auth: dict[str, str]
) -> None:
    run_id = submit(app_client, auth, transient_failures=2)
    run = wait_status(app_client, auth, run_id, "succeeded")
    assert run["attempt"] == 3
    types = event_types(app_client, auth, run_id)
    assert types == [
        "RunCreated",
        "RunStarted",
        "AttemptFailed",
        "RunStarted",
        "AttemptFailed",
        "RunStarted",
        "RunSucceeded",
    ]


def test_retries_stop_at_max_attempts(
    app_client: TestClient, auth: dict[str, str], settings: Settings
) -> None:
    run_id = submit(app_client, auth, transient_failures=settings.max_attempts)
    run = wait_status(app_client, auth, run_id, "failed")
    assert run["attempt"] == settings.max_attempts and run["error_code"] == "service_unavailable"


def test_duplicate_deliveries_make_no_duplicate_transition(
    app_client: TestClient,
    auth: dict[str, str],
    settings: Settings,
    engine: Engine,
    tenant: str,
    system: System,
) -> None:
    """Every message is published three more times, before and after the run ends."""
    publish = celery_publisher(settings)
    run_ids = [submit(app_client, auth, duration=0.2) for _ in range(5)]
    queue = settings.queue_name("short")
    for run_id in run_ids:
        for n in range(3):
            publish(OutboxMessage(-n, uuid.UUID(run_id), tenant, 1, queue))
    for run_id in run_ids:
        wait_status(app_client, auth, run_id, "succeeded")
    for run_id in run_ids:
        publish(OutboxMessage(-9, uuid.UUID(run_id), tenant, 1, queue))

    def every_copy_dropped() -> bool:
        # One of the four early messages (the relay's and three copies) started each run; the other
        # three and the late copy must each have been delivered and dropped by the worker.
        drops = Counter(
            line.get("run_id")
            for line in system.roles["worker"].log_events()
            if line.get("event") == "delivery.dropped"
        )
        return all(drops[run_id] >= 4 for run_id in run_ids)

    wait_until(every_copy_dropped, timeout=30, message="every duplicate delivered and dropped")
    for run_id in run_ids:
        with engine.connect() as conn:
            types = [e.type for e in read_stream(conn, uuid.UUID(run_id))]
        assert types == [
            "RunCreated",
            "RunStarted",
            "ProgressReported",
            "CheckpointRecorded",
            "RunSucceeded",
        ], types


def test_cancel_a_running_run(app_client: TestClient, auth: dict[str, str]) -> None:
    run_id = submit(app_client, auth, duration=20, steps=20)
    wait_status(app_client, auth, run_id, "running")
    response = app_client.post(f"/v1/runs/{run_id}/cancel", headers=auth)
    assert response.status_code == 200
    assert response.json()["cancel_requested"] is True
    run = wait_status(app_client, auth, run_id, "canceled", timeout=5)
    assert run["finished_at"] is not None
    types = event_types(app_client, auth, run_id)
    assert types[-2:] == ["CancelRequested", "RunCanceled"]
    again = app_client.post(f"/v1/runs/{run_id}/cancel", headers=auth)  # a retry is answered, not refused
    assert again.status_code == 200 and again.json()["status"] == "canceled"


def test_the_service_drops_stale_starts(
    service: RunService, app_client: TestClient, auth: dict[str, str]
) -> None:
    run_id = submit(app_client, auth)
    wait_status(app_client, auth, run_id, "succeeded")
    assert service.start_attempt(uuid.UUID(run_id), 1, "late-worker") is None
    assert service.start_attempt(uuid.UUID(run_id), 2, "late-worker") is None
