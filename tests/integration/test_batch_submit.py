"""`POST /v1/runs:batch`: many runs in one transaction, all or none, each item idempotent by its own key,
and every run executed by the real worker like one submitted alone."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from orchestrator.store.schema import events, outbox
from tests.services import wait_until

pytestmark = pytest.mark.usefixtures("system")


def _batch(client: TestClient, auth: dict[str, str], runs: list[dict[str, Any]]) -> Any:
    return client.post("/v1/runs:batch", json={"runs": runs}, headers=auth)


def _count(engine: Engine, table: sa.Table, tenant: str, *where: Any) -> int:
    query = sa.select(sa.func.count()).select_from(table).where(table.c.tenant_id == tenant, *where)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def test_a_batch_creates_every_run_and_the_worker_runs_them(
    app_client: TestClient, auth: dict[str, str], tenant: str, engine: Engine
) -> None:
    items = [{"kind": "sleep", "params": {"duration": 0}, "labels": {"n": str(n)}} for n in range(200)]
    response = _batch(app_client, auth, items)
    assert response.status_code == 201, response.text
    body = response.json()
    assert len(body["data"]) == 200 and body["created"] == [True] * 200
    assert [run["labels"]["n"] for run in body["data"]] == [str(n) for n in range(200)], "request order"
    assert {run["status"] for run in body["data"]} == {"pending"}
    assert _count(engine, outbox, tenant) == 200

    def all_succeeded() -> bool:
        done = events.c.type == "RunSucceeded"
        return _count(engine, events, tenant, done) == 200

    wait_until(all_succeeded, timeout=60, message="every batched run succeeded")
    one = app_client.get(f"/v1/runs/{body['data'][7]['id']}", headers=auth).json()
    assert one["status"] == "succeeded" and one["labels"] == {"n": "7"}


def test_a_retried_batch_answers_the_runs_its_first_call_created(
    idle_client: TestClient, auth: dict[str, str], tenant: str, engine: Engine
) -> None:
    keys = [f"k-{uuid.uuid4().hex}" for _ in range(3)]
    first = _batch(idle_client, auth, [{"kind": "sleep", "idempotency_key": k} for k in keys]).json()
    # A retry that adds one new item: the three keyed runs come back as they were, the new one is created.
    again = _batch(
        idle_client, auth, [{"kind": "sleep", "idempotency_key": k} for k in keys] + [{"kind": "sleep"}]
    )
    assert again.status_code == 201, again.text
    body = again.json()
    assert [r["id"] for r in body["data"][:3]] == [r["id"] for r in first["data"]]
    assert body["created"] == [False, False, False, True]
    assert _count(engine, events, tenant, events.c.type == "RunCreated") == 4
    # The same key with a different body is a conflict, and the whole batch is refused.
    clash = _batch(
        idle_client,
        auth,
        [{"kind": "sleep"}, {"kind": "sleep", "params": {"duration": 5}, "idempotency_key": keys[0]}],
    )
    assert clash.status_code == 409, clash.text
    assert _count(engine, events, tenant, events.c.type == "RunCreated") == 4


def test_one_bad_item_refuses_the_whole_batch_and_says_which(
    idle_client: TestClient, auth: dict[str, str], tenant: str, engine: Engine
) -> None:
    items: list[dict[str, Any]] = [{"kind": "sleep"}] * 3 + [{"kind": "sleep", "params": {"duration": -1}}]
    items.append({"kind": "no-such-kind"})
    response = _batch(idle_client, auth, items)
    assert response.status_code == 422, response.text
    locs = [err["loc"][:3] for err in response.json()["detail"]]
    assert ["body", "runs", 3] in locs and ["body", "runs", 4] in locs
    repeated = _batch(idle_client, auth, [{"kind": "sleep", "idempotency_key": "same"}] * 2)
    assert repeated.status_code == 422 and "repeats" in repeated.text
    too_many = _batch(idle_client, auth, [{"kind": "sleep"}] * 1001)
    assert too_many.status_code == 422
    empty = _batch(idle_client, auth, [])
    assert empty.status_code == 422
    assert _count(engine, events, tenant) == 0 and _count(engine, outbox, tenant) == 0
