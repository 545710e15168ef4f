"""`Idempotency-Key` means the same on every create route: a retry returns the first call's run, the same
key with another body is a 409, and the log holds one run either way."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from orchestrator.store.schema import events

# route -> (path, body for a tenant, the same body changed, status of the first answer)
Route = tuple[str, Callable[[str], dict[str, Any]], Callable[[str], dict[str, Any]], int]
ROUTES: dict[str, Route] = {
    "canonical": (
        "/v1/runs",
        lambda t: {"kind": "sleep", "params": {"duration": 1}},
        lambda t: {"kind": "sleep", "params": {"duration": 2}},
        201,
    ),
    "data-products": (
        "/api/v1/data-products/runs",
        lambda t: {"taskName": "sleep", "context": {"duration": 1}},
        lambda t: {"taskName": "sleep", "context": {"duration": 2}},
        200,
    ),
    "taxonomy": (
        "/v1/taxonomy/runs",
        lambda t: {"tenant_id": t, "field_id": "f", "source_type": "s", "source_id": "a"},
        lambda t: {"tenant_id": t, "field_id": "g", "source_type": "s", "source_id": "a"},
        201,
    ),
}


def _created_runs(engine: Engine, tenant: str) -> int:
    query = sa.select(sa.func.count()).where(events.c.tenant_id == tenant, events.c.type == "RunCreated")
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_a_retry_with_the_same_key_returns_the_same_run(
    route: str, idle_client: TestClient, engine: Engine, auth: dict[str, str], tenant: str
) -> None:
    path, body, changed, first_status = ROUTES[route]
    headers = {**auth, "Idempotency-Key": f"retry-{uuid.uuid4()}"}
    first = idle_client.post(path, json=body(tenant), headers=headers)
    second = idle_client.post(path, json=body(tenant), headers=headers)
    assert (first.status_code, second.status_code) == (first_status, 200), (first.text, second.text)
    assert first.json()["id"] == second.json()["id"]
    refused = idle_client.post(path, json=changed(tenant), headers=headers)
    assert refused.status_code == 409 and refused.json()["error_code"] == "idempotency_conflict"
    assert _created_runs(engine, tenant) == 1
    # Without a key, each call is a new run.
    again = [idle_client.post(path, json=body(tenant), headers=auth).json()["id"] for _ in range(2)]
    assert len({first.json()["id"], *again}) == 3
