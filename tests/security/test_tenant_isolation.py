"""BOLA matrix (S1): every id-bearing route, called with tenant B's key on tenant A's ids, answers
exactly like a random missing id; list endpoints and event streams never show another tenant's rows.
A route the table does not know fails the meta-test.

Every test runs against both deployments of conftest.py: with both walls, and with the application's
tenant filters alone (row-level security disabled), so a query that forgot its filter fails here even
though row-level security would have hidden the row in production.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.domain.commands import Succeed
from orchestrator.services import SubmitRequest
from orchestrator.storage import Storage, bucket_name
from orchestrator.store import features
from tests.security.conftest import Deployment

# A broken wall can open a stream that never ends; fail in bounded time instead of hanging the session.
pytestmark = pytest.mark.timeout(120)

Call = Callable[[str], tuple[str, str, dict[str, object] | None]]

# Every operation whose path or query names a run or a tenant: how to call it for a given id.
ID_ROUTES: dict[tuple[str, str], Call] = {
    ("GET", "/v1/runs/{run_id}"): lambda i: ("GET", f"/v1/runs/{i}", None),
    ("GET", "/v1/runs/{run_id}/events"): lambda i: ("GET", f"/v1/runs/{i}/events", None),
    ("POST", "/v1/runs/{run_id}/cancel"): lambda i: ("POST", f"/v1/runs/{i}/cancel", None),
    ("POST", "/v1/runs/{run_id}:retry"): lambda i: ("POST", f"/v1/runs/{i}:retry", None),
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
# Routes whose ids are a feature's or a dataset run's result: test_dataset_routes_answer_foreign_ids_...
DATASET_ROUTES = {("POST", "/v1/features/{feature_id}/runs"), ("GET", "/v1/task-runs/{run_id}/result")}
# Routes whose id is a workflow document's: test_workflow_routes_answer_foreign_ids_like_missing_ones.
WORKFLOW_ROUTES = {("GET", "/v1/workflows/{workflow_id}"), ("POST", "/v1/workflows/{workflow_id}/versions")}
# Routes whose id is a schedule's: test_schedule_routes_answer_foreign_ids_like_missing_ones.
SCHEDULE_ROUTES = {
    ("GET", "/v1/schedules/{schedule_id}"),
    ("PATCH", "/v1/schedules/{schedule_id}"),
    ("DELETE", "/v1/schedules/{schedule_id}"),
}
# Streams of a live run stay open, and TestClient returns only once a response has ended.
STREAMS = {("GET", "/v1/runs/{run_id}/stream"), ("GET", "/api/v1/data-products/runs/{run_id}/events")}
# Operations that name a tenant directly; called with the victim's tenant id instead of a run id.
TENANT_ROUTES: dict[tuple[str, str], Call] = {
    ("GET", "/v1/taxonomy/runs"): lambda t: ("GET", f"/v1/taxonomy/runs?tenant_id={t}", None),
    ("POST", "/v1/taxonomy/runs"): lambda t: (
        "POST",
        "/v1/taxonomy/runs",
        {"tenant_id": t, "field_id": "f", "source_type": "s", "source_id": "", "params": {}},
    ),
    # A corpus is named by its key within the caller's own tenant: another tenant's answers like none.
    ("POST", "/v1/corpora/{key}/jobs"): lambda t: (
        "POST",
        f"/v1/corpora/{t}/jobs",
        {"type": "JOB__CORPUS_REBUILD_VECTOR_INDEX"},
    ),
    ("POST", "/v1/corpora/{key}/query"): lambda t: ("POST", f"/v1/corpora/{t}/query", {"text": "x"}),
    # A taxonomy run and its tree are read with the tenant named: another tenant's answers like none.
    ("GET", "/v1/taxonomy/runs/{run_id}"): lambda t: (
        "GET",
        f"/v1/taxonomy/runs/{uuid.uuid4()}?tenant_id={t}",
        None,
    ),
    ("GET", "/v1/taxonomy/runs/{run_id}/nodes"): lambda t: (
        "GET",
        f"/v1/taxonomy/runs/{uuid.uuid4()}/nodes?tenant_id={t}",
        None,
    ),
    ("GET", "/v1/taxonomy/runs/{run_id}/assignments"): lambda t: (
        "GET",
        f"/v1/taxonomy/runs/{uuid.uuid4()}/assignments?tenant_id={t}",
        None,
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


def _stream_ids(body: str) -> list[int]:
    return [int(line[3:]) for line in body.splitlines() if line.startswith("id:")]


def test_every_id_bearing_route_has_an_entry(app_client: TestClient) -> None:
    missing = (
        _id_bearing_operations(app_client)
        - set(ID_ROUTES)
        - set(TENANT_ROUTES)
        - DATASET_ROUTES
        - WORKFLOW_ROUTES
        - SCHEDULE_ROUTES
    )
    assert not missing, f"add these routes to the BOLA table: {sorted(missing)}"
    # Also: taxonomy POST names the tenant in its body.
    assert ("POST", "/v1/taxonomy/runs") in TENANT_ROUTES


def test_foreign_ids_answer_like_missing_ones(deployment: Deployment) -> None:
    client = deployment.client
    victim, attacker = f"victim-{uuid.uuid4().hex[:8]}", f"attacker-{uuid.uuid4().hex[:8]}"
    live = deployment.submit(victim)
    finished = deployment.submit(victim)
    deployment.cancel(victim, finished)
    deployment.settle()
    # Resuming at the victim's terminal event: a stream route whose wall broke answers 200 and ends at
    # once instead of waiting for live events.
    last = str(deployment.positions(finished)[-1])
    other = {"Authorization": f"Bearer {deployment.key(attacker)}", "Last-Event-ID": last}
    owner = {"Authorization": f"Bearer {deployment.key(victim)}"}
    try:
        for route, call in ID_ROUTES.items():
            for run_id in (finished,) if route in STREAMS else (finished, live):
                foreign = client.request(*call(str(run_id))[:2], headers=other)
                missing = client.request(*call(str(uuid.uuid4()))[:2], headers=other)
                assert foreign.status_code == missing.status_code == 404, (route, foreign.text)
                assert foreign.content == missing.content, route
                if route[0] == "GET":  # the ids are real: their owner gets them
                    assert client.get(call(str(run_id))[1], headers=owner).status_code == 200, route
        for route, call in TENANT_ROUTES.items():
            method, path, body = call(victim)
            foreign = client.request(method, path, json=body, headers=other)
            method, path, body = call(f"nobody-{uuid.uuid4().hex[:8]}")
            missing = client.request(method, path, json=body, headers=other)
            assert foreign.status_code == missing.status_code == 404, (route, foreign.text)
            assert foreign.content == missing.content, route
        # The attempted cancels changed nothing.
        assert [kind for _, kind in deployment.log(live)] == ["RunCreated"]
    finally:
        deployment.cancel_live()


def test_dataset_routes_answer_foreign_ids_like_missing_ones(deployment: Deployment) -> None:
    """A victim's feature and a victim's finished dataset run with a result file: another tenant's key
    gets exactly the answers a random id gets; the owner gets the result."""
    client, service = deployment.client, deployment.service
    victim, attacker = f"victim-{uuid.uuid4().hex[:8]}", f"attacker-{uuid.uuid4().hex[:8]}"
    storage = Storage.from_settings(service.settings)
    with deployment.engine.begin() as conn:
        feature = features.insert(conn, victim, "secret", storage.object_url(victim, "in/x.jsonl"), "jsonl")
    params = {"task": "redact", "input_url": feature.url}
    run_id = service.submit(SubmitRequest(tenant_id=victim, kind="dataset_task", params=params)).run_id
    assert service.start_attempt(run_id, 1, "test") is not None
    path = f"results/{run_id}.jsonl"
    storage.write_stream(storage.object_url(victim, path), iter([b'{"a": 1}\n']))
    result = {"result_bucket": bucket_name(victim), "result_file_path": path}
    service.execute(run_id, Succeed(1, result))
    deployment.settle()
    other = {"Authorization": f"Bearer {deployment.key(attacker)}"}
    owner = {"Authorization": f"Bearer {deployment.key(victim)}"}
    body = {"task": "redact"}
    for real, random in (
        (f"/v1/task-runs/{run_id}/result", f"/v1/task-runs/{uuid.uuid4()}/result"),
        (f"/v1/features/{feature.id}/runs", f"/v1/features/{uuid.uuid4()}/runs"),
    ):
        method = "GET" if real.endswith("/result") else "POST"
        foreign = client.request(method, real, json=body if method == "POST" else None, headers=other)
        missing = client.request(method, random, json=body if method == "POST" else None, headers=other)
        assert foreign.status_code == missing.status_code == 404, (real, foreign.text)
        assert foreign.content == missing.content, real
    assert client.get(f"/v1/task-runs/{run_id}/result", headers=owner).text == '{"a": 1}\n'
    assert client.get("/v1/features", headers=other).json()["total"] == 0


def test_workflow_routes_answer_foreign_ids_like_missing_ones(deployment: Deployment) -> None:
    """A victim's workflow document: another tenant's key cannot read it, add a version to it or start a run
    of it, and gets exactly the answers a random id gets."""
    client = deployment.client
    victim, attacker = f"victim-{uuid.uuid4().hex[:8]}", f"attacker-{uuid.uuid4().hex[:8]}"
    document = {"steps": [{"key": "a", "tool": "transform", "input": {"value": 1}}]}
    owner = {"Authorization": f"Bearer {deployment.key(victim)}"}
    other = {"Authorization": f"Bearer {deployment.key(attacker)}"}
    made = client.post("/v1/workflows", json={"title": "secret", "document": document}, headers=owner).json()
    for path, body in (("/v1/workflows/{}", None), ("/v1/workflows/{}/versions", {"document": document})):
        method = "GET" if body is None else "POST"
        foreign = client.request(method, path.format(made["id"]), json=body, headers=other)
        missing = client.request(method, path.format(uuid.uuid4()), json=body, headers=other)
        assert foreign.status_code == missing.status_code == 404, (path, foreign.text)
        assert foreign.content == missing.content, path
    run = {"workflowDocumentId": made["id"], "context": {}}
    foreign_run = client.post("/api/v1/data-products/runs", json=run, headers=other)
    missing_run = client.post(
        "/api/v1/data-products/runs", json={**run, "workflowDocumentId": str(uuid.uuid4())}, headers=other
    )
    assert (
        foreign_run.status_code == missing_run.status_code == 422
        and foreign_run.content == missing_run.content
    )
    assert client.get("/v1/workflows", headers=other).json()["total"] == 0
    assert client.get(f"/v1/workflows/{made['id']}", headers=owner).json()["latest_version"] == 1


def test_schedule_routes_answer_foreign_ids_like_missing_ones(deployment: Deployment) -> None:
    """A victim's schedule: another tenant's key cannot read, pause or delete it, and gets exactly the
    answers a random id gets; the schedule is untouched afterwards."""
    client = deployment.client
    victim, attacker = f"victim-{uuid.uuid4().hex[:8]}", f"attacker-{uuid.uuid4().hex[:8]}"
    owner = {"Authorization": f"Bearer {deployment.key(victim)}"}
    other = {"Authorization": f"Bearer {deployment.key(attacker)}"}
    body = {"name": "secret", "cron": "0 3 * * *", "kind": "sleep", "params": {"duration": 0}}
    made = client.post("/v1/schedules", json=body, headers=owner)
    assert made.status_code == 201, made.text
    schedule_id = made.json()["id"]
    for method, payload in (("GET", None), ("PATCH", {"enabled": False}), ("DELETE", None)):
        foreign = client.request(method, f"/v1/schedules/{schedule_id}", json=payload, headers=other)
        missing = client.request(method, f"/v1/schedules/{uuid.uuid4()}", json=payload, headers=other)
        assert foreign.status_code == missing.status_code == 404, (method, foreign.text)
        assert foreign.content == missing.content, method
    assert client.get("/v1/schedules", headers=other).json()["data"] == []
    kept = client.get(f"/v1/schedules/{schedule_id}", headers=owner)
    assert kept.status_code == 200 and kept.json()["enabled"] is True


def test_a_last_event_id_of_another_tenant_resumes_nothing(deployment: Deployment) -> None:
    """Each tenant's stream positions are its own: a foreign position neither opens the foreign run's
    stream nor moves the start of one's own."""
    victim, attacker = f"victim-{uuid.uuid4().hex[:8]}", f"attacker-{uuid.uuid4().hex[:8]}"
    own_run = deployment.submit(attacker)
    foreign_run = deployment.submit(victim)
    deployment.cancel(victim, foreign_run)
    deployment.cancel(attacker, own_run)  # so the victim's positions fall inside the attacker's stream
    own, foreign = deployment.positions(own_run), deployment.positions(foreign_run)
    assert own[0] < foreign[0] < foreign[-1] < own[-1]
    headers = {"X-API-Key": deployment.key(attacker)}
    for path in ("/v1/runs/{}/stream", "/api/v1/data-products/runs/{}/events"):
        for position in foreign:
            resumed = {**headers, "Last-Event-ID": str(position)}
            mine = deployment.client.get(path.format(own_run), headers=resumed)
            assert mine.status_code == 200, mine.text
            assert _stream_ids(mine.text) == own, (path, position)  # the whole own log, nothing foreign
            theirs = deployment.client.get(path.format(foreign_run), headers=resumed)
            missing = deployment.client.get(path.format(uuid.uuid4()), headers=resumed)
            assert theirs.status_code == missing.status_code == 404, (path, theirs.text)
            assert theirs.content == missing.content, path


@dataclass(frozen=True)
class Tenant:
    key: str
    runs: dict[UUID, tuple[str, str]]  # run id -> (kind, status)

    def ids(self, kinds: tuple[str, ...] = (), status: str = "") -> set[str]:
        return {
            str(run_id)
            for run_id, (kind, state) in self.runs.items()
            if (not kinds or kind in kinds) and (not status or state == status)
        }


KINDS = ("sleep", "dataset_task", "corpus_rebuild_vector_index", "taxonomy_build")


@pytest.fixture(scope="module")
def three_tenants(deployment: Deployment) -> Iterator[dict[str, Tenant]]:
    """Per tenant, one pending and one canceled run of every kind the surfaces list."""
    tenants: dict[str, Tenant] = {}
    for n in range(3):
        name = f"iso{n}-{uuid.uuid4().hex[:6]}"
        runs: dict[UUID, tuple[str, str]] = {}
        attributes = {"corpus_ids": [n], "field_id": "f", "source_type": "s", "source_id": ""}
        for kind in KINDS:
            runs[deployment.submit(name, kind, **attributes)] = (kind, "pending")
            canceled = deployment.submit(name, kind, **attributes)
            deployment.cancel(name, canceled)
            runs[canceled] = (kind, "canceled")
        tenants[name] = Tenant(deployment.key(name), runs)
    deployment.settle()
    yield tenants
    deployment.cancel_live()


@settings(max_examples=30, deadline=None)
@given(who=st.integers(0, 2), status=st.sampled_from(["", "pending", "canceled"]))
def test_list_endpoints_show_exactly_the_callers_rows(
    deployment: Deployment, three_tenants: dict[str, Tenant], who: int, status: str
) -> None:
    client = deployment.client
    name = sorted(three_tenants)[who]
    me = three_tenants[name]
    headers = {"X-API-Key": me.key}
    query = f"limit=100&status={status}" if status else "limit=100"

    canonical = client.get(f"/v1/runs?{query}", headers=headers).json()
    assert {r["id"] for r in canonical["data"]} == me.ids(status=status)
    products = client.get(f"/api/v1/data-products/runs?{query}", headers=headers).json()
    assert {r["id"] for r in products["items"]} == me.ids(status=status)
    assert products["total"] == len(me.ids(status=status))

    tasks = client.get("/api/v1/task-runs?limit=100", headers=headers).json()
    assert {r["run_id"] for r in tasks["runs"]} == me.ids(("dataset_task",))
    assert tasks["total"] == len(me.ids(("dataset_task",)))
    jobs = client.post(
        "/v1/list-jobs",
        json={"state": ["JOB_STATE__QUEUED", "JOB_STATE__STARTED", "JOB_STATE__ABORTED"]},
        headers=headers,
    ).json()
    assert {j["id"] for j in jobs["job"]} == me.ids(("corpus_rebuild_vector_index",))
    taxonomy = client.get(f"/v1/taxonomy/runs?tenant_id={name}&limit=100", headers=headers).json()
    assert {r["id"] for r in taxonomy["data"]} == me.ids(("taxonomy_build",))
    # No worker runs here: the only runs that moved in the last hour are the caller's canceled ones.
    minutes = client.get("/v1/runs:activity", headers=headers).json()["data"]
    assert sum(m["canceled"] for m in minutes) == len(me.ids(status="canceled"))
    assert sum(m["started"] + m["succeeded"] + m["failed"] for m in minutes) == 0


def test_keys_are_scoped_even_for_their_own_grants(deployment: Deployment, tenant: str) -> None:
    sibling, stranger = f"{tenant}-sibling", f"{tenant}-stranger"
    granted = deployment.submit(sibling, "taxonomy_build", field_id="f", source_type="s", source_id="")
    deployment.submit(stranger, "taxonomy_build", field_id="f", source_type="s", source_id="")
    deployment.settle()
    headers = {"X-API-Key": deployment.key(tenant, grants=(sibling,))}
    try:
        shown = deployment.client.get(f"/v1/taxonomy/runs?tenant_id={sibling}", headers=headers)
        assert shown.status_code == 200 and [r["id"] for r in shown.json()["data"]] == [str(granted)]
        refused = deployment.client.get(f"/v1/taxonomy/runs?tenant_id={stranger}", headers=headers)
        assert refused.status_code == 404
        # The grant is for the taxonomy surface only: everywhere else the key is its own tenant's.
        assert deployment.client.get("/v1/runs", headers=headers).json()["data"] == []
        assert deployment.client.get(f"/v1/runs/{granted}", headers=headers).status_code == 404
    finally:
        deployment.cancel_live()
