"""Run trees: canceling a run cancels its live descendants, read from the log, and a run that is finished or
being canceled takes no new child."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from orchestrator.api.app import create_app
from orchestrator.domain.errors import IllegalTransition
from orchestrator.services import RunService, SubmitRequest
from orchestrator.settings import Settings
from orchestrator.store.schema import events

pytestmark = pytest.mark.usefixtures("system")


@pytest.fixture(scope="module")
def idle_client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    """A queue no worker consumes: every run stays pending until canceled."""
    idle = settings.model_copy(update={"queue_prefix": f"tree{uuid.uuid4().hex[:8]}"})
    with TestClient(create_app(idle, engine)) as client:
        yield client


def _submit(client: TestClient, auth: dict[str, str], parent: str | None = None) -> Any:
    body: dict[str, Any] = {"kind": "sleep", "params": {"duration": 30}}
    if parent:
        body["parent_run_id"] = parent
    return client.post("/v1/runs", json=body, headers=auth)


def _terminal(engine: Engine, run_ids: list[str]) -> dict[str, str]:
    query = sa.select(events.c.stream_id, events.c.type).where(
        events.c.stream_id.in_([uuid.UUID(r) for r in run_ids]),
        events.c.type.in_(["RunSucceeded", "RunFailed", "RunCanceled"]),
    )
    with engine.connect() as conn:
        return {str(row[0]): row[1] for row in conn.execute(query)}


def test_canceling_the_root_cancels_every_descendant(
    idle_client: TestClient, auth: dict[str, str], engine: Engine
) -> None:
    root = _submit(idle_client, auth).json()["id"]
    children = [_submit(idle_client, auth, root).json()["id"] for _ in range(3)]
    grandchildren = [_submit(idle_client, auth, child).json()["id"] for child in children for _ in range(2)]
    great = [_submit(idle_client, auth, grandchildren[0]).json()["id"]]
    tree = [root, *children, *grandchildren, *great]
    # Canceled straight after the submissions: no read model has to have seen the tree.
    assert idle_client.post(f"/v1/runs/{root}/cancel", headers=auth).status_code == 200
    assert _terminal(engine, tree) == dict.fromkeys(tree, "RunCanceled")
    # The tree is closed now: a new child anywhere in it is refused, and nothing was created.
    for parent in (root, grandchildren[0]):
        refused = _submit(idle_client, auth, parent)
        assert refused.status_code == 409 and refused.json()["error_code"] == "illegal_transition"


def test_a_sibling_tree_is_left_alone(idle_client: TestClient, auth: dict[str, str], engine: Engine) -> None:
    left, right = _submit(idle_client, auth).json()["id"], _submit(idle_client, auth).json()["id"]
    left_child = _submit(idle_client, auth, left).json()["id"]
    right_child = _submit(idle_client, auth, right).json()["id"]
    idle_client.post(f"/v1/runs/{left}/cancel", headers=auth)
    assert _terminal(engine, [left, left_child, right, right_child]) == {
        left: "RunCanceled",
        left_child: "RunCanceled",
    }


def test_children_submitted_while_the_parent_is_canceled_are_never_left_behind(
    engine: Engine, settings: Settings, tenant: str
) -> None:
    """Submissions racing the cascade: each child either is refused or ends canceled, never live."""
    idle = settings.model_copy(update={"queue_prefix": f"race{uuid.uuid4().hex[:8]}"})
    service = RunService(engine, idle)
    parent = service.submit(SubmitRequest(tenant_id=tenant, kind="sleep")).run_id

    def child() -> uuid.UUID | None:
        try:
            return service.submit(SubmitRequest(tenant_id=tenant, kind="sleep", parent_id=parent)).run_id
        except IllegalTransition:
            return None

    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(child) for _ in range(60)]
        service.cancel(tenant, parent)
        created = [run for f in futures if (run := f.result()) is not None]
    ended = _terminal(engine, [str(r) for r in created])
    assert ended == {str(r): "RunCanceled" for r in created}, "a child created in the race was left live"


def test_a_child_past_the_depth_bound_is_a_422(
    idle_client: TestClient, auth: dict[str, str], settings: Settings
) -> None:
    root = parent = _submit(idle_client, auth).json()["id"]
    for _ in range(settings.max_run_depth):  # depths 1..max are allowed
        parent = _submit(idle_client, auth, parent).json()["id"]
    refused = _submit(idle_client, auth, parent)
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["detail"]
    assert error["loc"] == ["body", "parent_run_id"] and "ORCH_MAX_RUN_DEPTH" in error["msg"]
    assert idle_client.post(f"/v1/runs/{root}/cancel", headers=auth).status_code == 200
