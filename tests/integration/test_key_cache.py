"""A key the API has seen is not looked up again, and revoking it still refuses its very next request, on
every kind of route: the check rides in each transaction's tenant-scoping statement."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from orchestrator.store import keys
from orchestrator.store.schema import events
from tests.conftest import statements_run

pytestmark = pytest.mark.usefixtures("system")


def _key_lookups(statements: list[str]) -> list[str]:
    return [s for s in statements if "api_keys" in s and "digest" in s]


def _new_key(engine: Engine, tenant: str) -> tuple[str, keys.KeyRecord]:
    with engine.begin() as conn:
        return keys.create(conn, tenant, "cache-test")


def _revoke(engine: Engine, record: keys.KeyRecord) -> None:
    with engine.begin() as conn:
        assert keys.revoke(conn, str(record.id)) == 1


def test_a_known_key_is_looked_up_once(idle_client: TestClient, engine: Engine, tenant: str) -> None:
    key, _ = _new_key(engine, tenant)
    headers = {"Authorization": f"Bearer {key}"}
    with statements_run(engine) as statements:
        for _ in range(5):
            assert idle_client.get("/v1/runs", headers=headers).status_code == 200
    assert len(_key_lookups(statements)) == 1


def test_an_unknown_key_is_looked_up_each_time(idle_client: TestClient, engine: Engine, tenant: str) -> None:
    key, record = _new_key(engine, tenant)
    _revoke(engine, record)  # well formed, never active in this process: nothing to cache
    with statements_run(engine) as statements:
        for _ in range(3):
            assert idle_client.get("/v1/runs", headers={"X-API-Key": key}).status_code == 401
    assert len(_key_lookups(statements)) == 3


# Each route reads or writes the tenant's data in PostgreSQL: the transaction that would do it refuses.
REQUESTS: dict[str, Callable[[str], tuple[str, str, dict[str, Any] | None]]] = {
    "submit": lambda run: ("POST", "/v1/runs", {"kind": "sleep", "params": {"duration": 0}}),
    "submit a batch": lambda run: ("POST", "/v1/runs:batch", {"runs": [{"kind": "sleep"}]}),
    "get": lambda run: ("GET", f"/v1/runs/{run}", None),
    "events": lambda run: ("GET", f"/v1/runs/{run}/events", None),
    "stream": lambda run: ("GET", f"/v1/runs/{run}/stream", None),
    "cancel": lambda run: ("POST", f"/v1/runs/{run}/cancel", None),
    "list": lambda run: ("GET", "/v1/runs", None),
    "counts": lambda run: ("GET", "/v1/runs:counts", None),
    "limits": lambda run: ("GET", "/v1/limits", None),
    "data products": lambda run: ("GET", "/api/v1/data-products/runs", None),
    "list jobs": lambda run: ("POST", "/v1/list-jobs", {}),
}


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_a_revoked_key_is_refused_on_its_next_request(
    idle_client: TestClient, engine: Engine, tenant: str, name: str
) -> None:
    key, record = _new_key(engine, tenant)
    headers = {"Authorization": f"Bearer {key}"}
    created = idle_client.post("/v1/runs", json={"kind": "sleep"}, headers=headers)
    assert created.status_code == 201, created.text
    run = created.json()["id"]
    with engine.connect() as conn:
        written = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()

    _revoke(engine, record)
    method, path, body = REQUESTS[name](run)
    refused = idle_client.request(method, path, json=body, headers=headers)

    assert refused.status_code == 401, refused.text
    if path.startswith("/v1/runs"):  # the surfaces answer in their own error shapes
        assert refused.json() == {"detail": "missing or invalid API key", "error_code": "unauthenticated"}
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one() == written
