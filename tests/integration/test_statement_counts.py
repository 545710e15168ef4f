"""No N+1: every list, tree and get route runs a fixed number of statements, however many runs it returns.

Statements are counted at the engine (`before_cursor_execute`) while one request is served in process. Each
route is measured on a tenant with few runs and again on one with many; the counts must be equal and
stay under a small bound (authentication and tenant scoping included).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from orchestrator.api.app import create_app
from orchestrator.domain.commands import StartAttempt, StartStep
from orchestrator.projections import runner
from orchestrator.services import RunService, SubmitRequest
from orchestrator.settings import Settings
from orchestrator.store.events import head_position
from tests.conftest import System, statements_run, thread_hops
from tests.services import placeholder_params

pytestmark = pytest.mark.usefixtures("system")

# Per request, whatever it returns: the key lookup, the tenant scope and the route's own queries.
MAX_STATEMENTS = 8  # measured: 4 to 6
# Per request: the key's check (cache, rate-limit token) and the route's reads. Each hop to a worker thread
# costs CPU and a wait for the GIL; a plain `def` dependency or endpoint validation would add one each.
MAX_THREAD_HOPS = 2


@pytest.fixture(scope="module")
def idle(settings: Settings, engine: Engine, system: System) -> Iterator[tuple[TestClient, RunService]]:
    own = settings.model_copy(update={"queue_prefix": f"idle{uuid.uuid4().hex[:8]}", "lease_seconds": 3600.0})
    with TestClient(create_app(own, engine)) as client:
        yield client, RunService(engine, own)


def _tenant_with(service: RunService, engine: Engine, runs: int) -> tuple[str, uuid.UUID, uuid.UUID]:
    """A tenant with `runs` runs of every kind the lists show, all in one tree under the first one."""
    tenant = f"count-{uuid.uuid4().hex[:8]}"
    root = service.submit(SubmitRequest(tenant_id=tenant, kind="sleep")).run_id
    for n in range(runs - 1):
        kind = ("sleep", "dataset_task", "taxonomy_build", "corpus_rebuild_vector_index")[n % 4]
        service.submit(
            SubmitRequest(tenant_id=tenant, kind=kind, params=placeholder_params(kind), parent_id=root)
        )
    service.execute(root, StartAttempt(1, "test"))
    for sequence in (1, 2, 3):
        service.execute(root, StartStep(1, f"step-{sequence}", sequence))
    with engine.connect() as conn:
        head = head_position(conn)
    assert all(runner.wait_for(engine, head, 30.0, p.name) for p in runner.PROJECTIONS)
    return tenant, root, root


ROUTES: dict[str, Callable[[str, uuid.UUID], tuple[str, str, dict[str, Any] | None]]] = {
    "list runs": lambda t, r: ("GET", "/v1/runs?limit=100", None),
    "list runs filtered": lambda t, r: ("GET", "/v1/runs?limit=100&status=pending&kind=sleep", None),
    "get run": lambda t, r: ("GET", f"/v1/runs/{r}", None),
    "run events": lambda t, r: ("GET", f"/v1/runs/{r}/events", None),
    "runs per minute": lambda t, r: ("GET", "/v1/runs:activity?minutes=60", None),
    "taxonomy list": lambda t, r: ("GET", f"/v1/taxonomy/runs?tenant_id={t}&limit=100", None),
    "task runs": lambda t, r: ("GET", "/api/v1/task-runs?limit=100", None),
    "list jobs": lambda t, r: ("POST", "/v1/list-jobs", {"numResults": 100}),
    "data-products list": lambda t, r: ("GET", "/api/v1/data-products/runs?limit=100", None),
    "data-products get": lambda t, r: ("GET", f"/api/v1/data-products/runs/{r}", None),
    "data-products tree": lambda t, r: ("GET", f"/api/v1/data-products/runs/{r}/tree", None),
}


def test_statements_per_request_do_not_grow_with_the_rows(
    idle: tuple[TestClient, RunService], engine: Engine, make_key: Callable[[str], str]
) -> None:
    client, service = idle
    measured: dict[str, list[int]] = {name: [] for name in ROUTES}
    for size in (3, 40):
        tenant, run_id, _ = _tenant_with(service, engine, size)
        headers = {"Authorization": f"Bearer {make_key(tenant)}"}
        for name, route in ROUTES.items():
            method, path, body = route(tenant, run_id)
            with statements_run(engine) as statements, thread_hops() as hops:
                response = client.request(method, path, json=body, headers=headers)
            assert response.status_code == 200, (name, response.text)
            measured[name].append(len(statements))
            assert len(hops) <= MAX_THREAD_HOPS, f"{name}: {len(hops)} thread hops per request: {hops}"
    for name, (few, many) in measured.items():
        assert few == many, f"{name}: {few} statements for a few runs, {many} for many (N+1)"
        assert many <= MAX_STATEMENTS, f"{name}: {many} statements per request"
