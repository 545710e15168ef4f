"""`orchestrator worker` with `ORCH_WORKER_METRICS_PORT`: its pool processes' figures (deliveries by
outcome, event appends) summed and served on that port by the worker's main process."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from orchestrator.services import RunService, SubmitRequest
from orchestrator.settings import Settings
from tests.services import RoleProcess, free_port, settings_env, wait_until

pytestmark = pytest.mark.usefixtures("system")


def _scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
    try:
        text = httpx.get(url, timeout=2).text
    except httpx.TransportError:
        return None
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_worker_serves_the_sum_of_its_pool_processes_metrics(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    port = free_port()
    # A queue of its own, so this worker (and not the session's) runs the test's runs.
    own = settings.model_copy(
        update={
            "queue_prefix": f"wm{uuid.uuid4().hex[:8]}",
            "worker_metrics_port": port,
            "data_dir": tmp_path,
        }
    )
    worker = RoleProcess("worker", settings_env(own), tmp_path).start()
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_until(lambda: _scrape(url) is not None or not worker.alive(), timeout=60, message="the port")
        assert worker.alive(), worker.tail()
        service = RunService(engine, own)
        tenant = f"wm-{uuid.uuid4().hex[:8]}"
        for _ in range(4):
            service.submit(
                SubmitRequest(tenant_id=tenant, kind="sleep", params={"duration": 0}, actor="test")
            )

        def succeeded() -> float:
            found = _scrape(url) or {}
            return found.get(("orch_worker_task_seconds_count", frozenset({("outcome", "succeeded")})), 0.0)

        wait_until(lambda: succeeded() >= 4, timeout=60, message="four deliveries counted")
        found = _scrape(url) or {}
        appends = sum(v for (name, _), v in found.items() if name == "orch_event_append_seconds_count")
        assert appends >= 8, "each run's start and end were appended in the pool processes"
    finally:
        worker.stop()
