"""The canonical API in process (TestClient) over the real database, with the system's projector."""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from orchestrator.domain.commands import StartAttempt, Succeed
from orchestrator.projections import runner
from orchestrator.services import RunService
from orchestrator.settings import Settings
from orchestrator.store import keys
from orchestrator.store.events import head_position

pytestmark = pytest.mark.usefixtures("system")


def settle(engine: Engine) -> None:
    """Until the read models show every write so far: lists read the projection, which trails the log."""
    with engine.connect() as conn:
        head = head_position(conn)
    assert all(runner.wait_for(engine, head, 20.0, p.name) for p in runner.PROJECTIONS), "projector is behind"


def submit(client: TestClient, auth: dict[str, str], **body: object) -> dict[str, object]:
    response = client.post("/v1/runs", json={"kind": "sleep", **body}, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_health_and_readiness(app_client: TestClient) -> None:
    assert app_client.get("/healthz").json() == {"status": "ok"}
    ready = app_client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_submit_then_read(idle_client: TestClient, auth: dict[str, str], tenant: str) -> None:
    run = submit(idle_client, auth, params={"duration": 1})
    assert run["status"] == "pending" and run["tenant_id"] == tenant and run["params"]["duration"] == 1.0
    got = idle_client.get(f"/v1/runs/{run['id']}", headers=auth)
    assert got.status_code == 200 and got.json()["id"] == run["id"]
    events = idle_client.get(f"/v1/runs/{run['id']}/events", headers=auth).json()["data"]
    assert [e["type"] for e in events] == ["RunCreated"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer orch_notakey"},
        {"X-API-Key": "orch_" + "A" * 43 + "_AAAAAA"},
        {"Cookie": "vai_token=garbage"},
    ],
)
def test_401_is_identical_for_every_bad_key(app_client: TestClient, headers: dict[str, str]) -> None:
    response = app_client.get("/v1/runs", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "missing or invalid API key", "error_code": "unauthenticated"}


def test_revoked_key_is_refused_on_its_next_request(
    app_client: TestClient, engine: Engine, tenant: str
) -> None:
    with engine.begin() as conn:
        key, record = keys.create(conn, tenant)
    headers = {"X-API-Key": key}
    assert app_client.get("/v1/runs", headers=headers).status_code == 200
    with engine.begin() as conn:
        assert keys.revoke(conn, str(record.id)) == 1
    revoked = app_client.get("/v1/runs", headers=headers)
    assert revoked.status_code == 401
    assert revoked.json() == app_client.get("/v1/runs").json()


def test_all_three_key_carriers_work(
    app_client: TestClient, make_key: Callable[[str], str], tenant: str
) -> None:
    key = make_key(tenant)
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}, {"Cookie": f"vai_token={key}"}):
        assert app_client.get("/v1/runs", headers=headers).status_code == 200


def test_another_tenants_run_is_not_found(
    idle_client: TestClient, auth: dict[str, str], make_key: Callable[[str], str]
) -> None:
    run = submit(idle_client, auth)
    other = {"Authorization": f"Bearer {make_key('someone-else')}"}
    for method, path in (
        ("GET", "/v1/runs/{}"),
        ("GET", "/v1/runs/{}/events"),
        ("POST", "/v1/runs/{}/cancel"),
    ):
        foreign = idle_client.request(method, path.format(run["id"]), headers=other)
        missing = idle_client.request(method, path.format(uuid.uuid4()), headers=other)
        assert foreign.status_code == missing.status_code == 404
        assert foreign.content == missing.content
    listed = idle_client.get("/v1/runs", headers=other).json()["data"]
    assert run["id"] not in {r["id"] for r in listed}


@pytest.mark.parametrize(
    ("method", "path", "body", "loc"),
    [
        ("POST", "/v1/runs", {"kind": "nope"}, ["body", "kind"]),
        ("POST", "/v1/runs", {"kind": "sleep", "tenant_id": "x"}, ["body", "tenant_id"]),
        ("POST", "/v1/runs", {"kind": "sleep", "status": "succeeded"}, ["body", "status"]),
        ("POST", "/v1/runs", {"kind": "sleep", "params": {"duration": -1}}, ["body", "params", "duration"]),
        ("POST", "/v1/runs", {"kind": "sleep", "params": {"bogus": 1}}, ["body", "params", "bogus"]),
        (
            "POST",
            "/v1/runs",
            {"kind": "sleep", "parent_run_id": str(uuid.uuid4())},
            ["body", "parent_run_id"],
        ),
        ("GET", "/v1/runs?limit=0", None, ["query", "limit"]),
        ("GET", "/v1/runs?limit=101", None, ["query", "limit"]),
        ("GET", "/v1/runs?limit=x", None, ["query", "limit"]),
        ("GET", "/v1/runs?status=done", None, ["query", "status"]),
        ("GET", "/v1/runs?cursor=garbage", None, ["query", "cursor"]),
        ("GET", "/v1/runs/not-a-uuid", None, ["path", "run_id"]),
    ],
)
def test_422_has_a_detail_list(
    idle_client: TestClient, auth: dict[str, str], method: str, path: str, body: object, loc: list[str]
) -> None:
    response = idle_client.request(method, path, json=body, headers=auth)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail
    assert all(set(item) == {"loc", "msg", "type"} for item in detail)
    assert loc in [item["loc"] for item in detail]


def test_cancel_is_idempotent_and_409_only_for_a_run_that_ended_otherwise(
    idle_client: TestClient, auth: dict[str, str], tenant: str, service: RunService
) -> None:
    run = submit(idle_client, auth)
    canceled = idle_client.post(f"/v1/runs/{run['id']}/cancel", headers=auth)
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    # A client retrying its cancel is answered with the run, and nothing more is recorded.
    again = idle_client.post(f"/v1/runs/{run['id']}/cancel", headers=auth)
    assert again.status_code == 200 and again.json()["status"] == "canceled"
    types = [e["type"] for e in idle_client.get(f"/v1/runs/{run['id']}/events", headers=auth).json()["data"]]
    assert types == ["RunCreated", "RunCanceled"]
    done = uuid.UUID(str(submit(idle_client, auth)["id"]))
    service.execute(done, StartAttempt(1, "test"))
    service.execute(done, Succeed(1))
    refused = idle_client.post(f"/v1/runs/{done}/cancel", headers=auth)
    assert refused.status_code == 409
    assert refused.json() == {"detail": "run is already succeeded", "error_code": "illegal_transition"}


def test_idempotent_submission(idle_client: TestClient, auth: dict[str, str]) -> None:
    headers = {**auth, "Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = idle_client.post("/v1/runs", json={"kind": "sleep"}, headers=headers)
    second = idle_client.post("/v1/runs", json={"kind": "sleep"}, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    different = idle_client.post(
        "/v1/runs", json={"kind": "sleep", "params": {"duration": 2}}, headers=headers
    )
    assert different.status_code == 409
    relabeled = idle_client.post("/v1/runs", json={"kind": "sleep", "labels": {"a": "b"}}, headers=headers)
    assert relabeled.status_code == 409


def test_concurrent_retries_with_one_idempotency_key_make_one_run(
    idle_client: TestClient, auth: dict[str, str], tenant: str, engine: Engine
) -> None:
    headers = {**auth, "Idempotency-Key": "same-for-all"}
    ids: list[str] = []
    barrier = threading.Barrier(8)

    def post() -> None:
        barrier.wait()
        response = idle_client.post("/v1/runs", json={"kind": "sleep"}, headers=headers)
        assert response.status_code in (200, 201), response.text
        ids.append(response.json()["id"])

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 8 and len(set(ids)) == 1
    settle(engine)
    listed = idle_client.get("/v1/runs", headers=auth).json()["data"]
    assert [r["id"] for r in listed] == [ids[0]]


def test_keyset_pages_walk_without_gaps_or_repeats(
    idle_client: TestClient, auth: dict[str, str], engine: Engine
) -> None:
    submitted = [submit(idle_client, auth, labels={"n": str(i)})["id"] for i in range(23)]
    settle(engine)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        page = idle_client.get("/v1/runs", params=params, headers=auth).json()
        seen.extend(r["id"] for r in page["data"])
        pages += 1
        if pages == 2:  # runs created mid-walk land before the cursor and must not disturb it
            submit(idle_client, auth)
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(submitted))
    assert pages == 5


def test_cursors_are_bound_to_tenant_and_filters(
    idle_client: TestClient, auth: dict[str, str], make_key: Callable[[str], str], engine: Engine
) -> None:
    for _ in range(3):
        submit(idle_client, auth)
    settle(engine)
    cursor = idle_client.get("/v1/runs?limit=1", headers=auth).json()["next_cursor"]
    assert cursor
    other = {"Authorization": f"Bearer {make_key('cursor-thief')}"}
    assert idle_client.get(f"/v1/runs?limit=1&cursor={cursor}", headers=other).status_code == 422
    assert (
        idle_client.get(f"/v1/runs?limit=1&status=pending&cursor={cursor}", headers=auth).status_code == 422
    )
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[5] ^= 1
    tampered = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    assert idle_client.get(f"/v1/runs?limit=1&cursor={tampered}", headers=auth).status_code == 422


def test_filters(idle_client: TestClient, auth: dict[str, str], engine: Engine) -> None:
    parent = submit(idle_client, auth)
    child = submit(idle_client, auth, parent_run_id=parent["id"])
    assert child["parent_id"] == parent["id"] and child["root_id"] == parent["id"] and child["depth"] == 1
    canceled = submit(idle_client, auth)
    idle_client.post(f"/v1/runs/{canceled['id']}/cancel", headers=auth)
    settle(engine)

    def ids(query: str) -> set[str]:
        return {r["id"] for r in idle_client.get(f"/v1/runs?{query}", headers=auth).json()["data"]}

    assert ids("root_only=true") == {parent["id"], canceled["id"]}
    assert ids(f"parent_id={parent['id']}") == {child["id"]}
    assert ids("status=canceled") == {canceled["id"]}
    assert ids("status=pending&kind=sleep") == {parent["id"], child["id"]}
    assert ids("kind=other") == set()


def test_body_cap_answers_413(app_client: TestClient, auth: dict[str, str], settings: Settings) -> None:
    big = {"kind": "sleep", "labels": {"x": "y" * (settings.max_body_bytes + 10)}}
    response = app_client.post("/v1/runs", json=big, headers=auth)
    assert response.status_code == 413
    assert response.json()["error_code"] == "payload_too_large"
