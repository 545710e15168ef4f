"""BOLA matrix (S1): every id-bearing route, called with tenant B's key on tenant A's ids, answers
exactly like a random missing id. A route the table does not know fails the meta-test."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.services import RunService, SubmitRequest
from orchestrator.store import keys

pytestmark = pytest.mark.usefixtures("system")

# Every operation whose path or query names a run or a tenant: how to call it for a given id.
ID_ROUTES: dict[tuple[str, str], Callable[[str], tuple[str, str, dict[str, object] | None]]] = {
    ("GET", "/v1/runs/{run_id}"): lambda i: ("GET", f"/v1/runs/{i}", None),
    ("GET", "/v1/runs/{run_id}/events"): lambda i: ("GET", f"/v1/runs/{i}/events", None),
    ("POST", "/v1/runs/{run_id}/cancel"): lambda i: ("POST", f"/v1/runs/{i}/cancel", None),
    ("GET", "/v1/runs/{run_id}/stream"): lambda i: ("GET", f"/v1/runs/{i}/stream", None),
    ("GET", "/api/v1/data-products/runs/{run_id}"): lambda i: (
        "GET",
        f"/api/v1/data-products/runs/{i}",
        None,
    ),
    ("POST", "/api/v1/data-products/runs/{run_id}/cancel"): lambda i: (
        "POST",
        f"/api/v1/data-products/runs/{i}/cancel",
        None,
    ),
    ("GET", "/api/v1/data-products/runs/{run_id}/events"): lambda i: (
        "GET",
        f"/api/v1/data-products/runs/{i}/events",
        None,
    ),
    ("GET", "/api/v1/data-products/runs/{run_id}/tree"): lambda i: (
        "GET",
        f"/api/v1/data-products/runs/{i}/tree",
        None,
    ),
}
# Operations that name a tenant directly; called with the victim's tenant id instead of a run id.
TENANT_ROUTES = {
    ("GET", "/v1/taxonomy/runs"): lambda t: ("GET", f"/v1/taxonomy/runs?tenant_id={t}", None),
    ("POST", "/v1/taxonomy/runs"): lambda t: (
        "POST",
        "/v1/taxonomy/runs",
        {"tenant_id": t, "field_id": "f", "source_type": "s", "source_id": "", "params": {}},
    ),
}


def _id_bearing_operations(client: TestClient) -> set[tuple[str, str]]:
    found = set()
    for path, operations in client.app.openapi()["paths"].items():  # type: ignore[attr-defined]
        for method, operation in operations.items():
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] in ("path", "query")}
            if "{" in path or "tenant_id" in names:
                found.add((method.upper(), path))
    return found


def test_every_id_bearing_route_has_an_entry(app_client: TestClient) -> None:
    missing = _id_bearing_operations(app_client) - set(ID_ROUTES) - set(TENANT_ROUTES)
    assert not missing, f"add these routes to the BOLA table: {sorted(missing)}"
    # Also: taxonomy POST names the tenant in its body.
    assert ("POST", "/v1/taxonomy/runs") in TENANT_ROUTES


def test_foreign_ids_answer_like_missing_ones(
    app_client: TestClient, service: RunService, make_key: Callable[[str], str]
) -> None:
    victim, attacker = f"victim-{uuid.uuid4().hex[:8]}", f"attacker-{uuid.uuid4().hex[:8]}"
    run = service.submit(SubmitRequest(tenant_id=victim, kind="sleep", params={"duration": 30}))
    other = {"Authorization": f"Bearer {make_key(attacker)}"}
    for route, call in ID_ROUTES.items():
        foreign = app_client.request(*call(str(run.run_id))[:2], headers=other)
        missing = app_client.request(*call(str(uuid.uuid4()))[:2], headers=other)
        assert foreign.status_code == missing.status_code == 404, (route, foreign.text)
        assert foreign.content == missing.content, route
    for route, call in TENANT_ROUTES.items():
        method, path, body = call(victim)
        foreign = app_client.request(method, path, json=body, headers=other)
        method, path, body = call(f"nobody-{uuid.uuid4().hex[:8]}")
        missing = app_client.request(method, path, json=body, headers=other)
        assert foreign.status_code == missing.status_code == 404, (route, foreign.text)
        assert foreign.content == missing.content, route
    # The attempted cancel changed nothing.
    assert service.load(run.run_id).cancel_requested is False


LIST_QUERIES = [
    "/v1/runs?limit=100",
    "/api/v1/data-products/runs?limit=100",
    "/api/v1/task-runs?limit=100",
]


@pytest.fixture(scope="module")
def three_tenants(service: RunService, make_key: Callable[[str], str]) -> dict[str, tuple[str, set[str]]]:
    tenants: dict[str, tuple[str, set[str]]] = {}
    for n in range(3):
        name = f"iso{n}-{uuid.uuid4().hex[:6]}"
        ids = set()
        for kind in ("sleep", "dataset_task", "corpus_rebuild_vector_index", "taxonomy_build"):
            attributes = {"corpus_ids": [n], "field_id": "f", "source_type": "s", "source_id": ""}
            ids.add(
                str(service.submit(SubmitRequest(tenant_id=name, kind=kind, attributes=attributes)).run_id)
            )
        tenants[name] = (make_key(name), ids)
    return tenants


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    who=st.integers(0, 2),
    query=st.sampled_from(LIST_QUERIES),
    status=st.sampled_from(["", "pending", "failed"]),
)
def test_list_endpoints_never_show_foreign_rows(
    app_client: TestClient, three_tenants: dict[str, tuple[str, set[str]]], who: int, query: str, status: str
) -> None:
    name = sorted(three_tenants)[who]
    key, own = three_tenants[name]
    foreign = set().union(*(ids for t, (_, ids) in three_tenants.items() if t != name))
    path = query + (f"&status={status}" if status and "task-runs" not in query else "")
    body = app_client.get(path, headers={"X-API-Key": key}).json()
    rows = body.get("data") or body.get("items") or body.get("runs") or []
    seen = {r.get("id") or r.get("run_id") for r in rows}
    assert not seen & foreign
    jobs = app_client.post(
        "/v1/list-jobs",
        json={"state": ["JOB_STATE__QUEUED", "JOB_STATE__STARTED"]},
        headers={"X-API-Key": key},
    )
    assert not {j["id"] for j in jobs.json()["job"]} & foreign
    taxonomy = app_client.get(f"/v1/taxonomy/runs?tenant_id={name}", headers={"X-API-Key": key}).json()[
        "data"
    ]
    assert {r["id"] for r in taxonomy} <= own


def test_keys_are_scoped_even_for_their_own_grants(
    app_client: TestClient, engine: object, tenant: str
) -> None:
    from sqlalchemy.engine import Engine

    assert isinstance(engine, Engine)
    with engine.begin() as conn:
        key, _ = keys.create(conn, tenant, grants=(f"{tenant}-sibling",))
    headers = {"X-API-Key": key}
    assert app_client.get(f"/v1/taxonomy/runs?tenant_id={tenant}-sibling", headers=headers).status_code == 200
    assert (
        app_client.get(f"/v1/taxonomy/runs?tenant_id={tenant}-stranger", headers=headers).status_code == 404
    )
