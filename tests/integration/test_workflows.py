"""Workflow runs on the session's real worker (2 processes): a spawn of 50 children joined without deadlock,
because the waiting parent parks instead of holding a slot; failing steps with and without
continue_on_error; and a cancel of a running 3-level tree that leaves nothing live."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from orchestrator.settings import Settings
from orchestrator.store.schema import events
from schemas.events import TERMINAL_EVENT_TYPES
from tests.services import wait_until

pytestmark = pytest.mark.usefixtures("system")

RUNS = "/api/v1/data-products/runs"
TERMINAL = {"succeeded", "failed", "canceled"}
USAGE = {"input_tokens": 10, "output_tokens": 3, "cost": "0.0015"}


def start(client: TestClient, auth: dict[str, str], steps: list[dict[str, Any]], **context: Any) -> str:
    made = client.post("/v1/workflows", json={"title": "Fan", "document": {"steps": steps}}, headers=auth)
    assert made.status_code == 201, made.text
    run = client.post(RUNS, json={"workflowDocumentId": made.json()["id"], "context": context}, headers=auth)
    assert run.status_code == 200, run.text
    return str(run.json()["id"])


def detail_when_ended(
    client: TestClient, auth: dict[str, str], engine: Engine, run_id: str, timeout: float = 30
) -> dict[str, Any]:
    """The run's detail once it has ended and the steps read model shows every step its log finished."""

    def ended() -> dict[str, Any] | None:
        run: dict[str, Any] = client.get(f"{RUNS}/{run_id}", headers=auth).json()
        if run["status"] not in TERMINAL:
            return None
        finished = [s for s in run["steps"] if s["completedAt"] is not None]
        return run if len(finished) == event_types(engine, run_id).count("StepFinished") else None

    return wait_until(ended, timeout=timeout, interval=0.1, message=f"workflow {run_id} ended")


def event_types(engine: Engine, run_id: str) -> list[str]:
    query = sa.select(events.c.type).where(events.c.stream_id == uuid.UUID(run_id)).order_by(events.c.version)
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


def test_fifty_children_joined_with_two_worker_slots(
    app_client: TestClient, auth: dict[str, str], engine: Engine, settings: Settings
) -> None:
    assert settings.worker_concurrency == 2  # the parent waits for 50 children with only 2 slots
    steps = [
        {
            "key": "fan",
            "tool": "spawn",
            "input": {
                "task": "sleep",
                "count": "{{ context.n }}",
                "context": {"duration": 0, "usage": USAGE},
            },
        },
        {"key": "wait", "tool": "join", "input": {"step": "fan"}},
        {"key": "ok", "tool": "transform", "input": {"value": "{{ steps.wait.results }}", "pluck": "status"}},
    ]
    run_id = start(app_client, auth, steps, n=50)
    run = detail_when_ended(app_client, auth, engine, run_id, timeout=60)
    assert run["status"] == "succeeded", (run["error"], run["steps"])
    assert [s["stepKey"] for s in run["steps"]] == ["fan", "wait", "ok"]
    assert all(s["status"] == "succeeded" and s["toolCallId"] for s in run["steps"])
    wait, ok = run["steps"][1]["output"], run["steps"][2]["output"]
    assert wait["count"] == 50 and wait["statuses"] == {"succeeded": 50}
    assert ok["value"] == ["succeeded"] * 50
    usage = run["observability"]["usage"]  # the children's usage, summed by the join step
    assert (usage["inputTokens"], usage["outputTokens"], usage["totalCost"]) == (500, 150, "0.0750")
    assert run["outcome"]["rowCount"] == 50 and run["outcome"]["version"] == 1
    tree = app_client.get(f"{RUNS}/{run_id}/tree", headers=auth).json()["items"]
    assert len(tree) == 51 and {r["depth"] for r in tree} == {0, 1}
    assert {r["status"] for r in tree} == {"succeeded"} and {r["rootRunId"] for r in tree} == {run_id}
    # It parked (freeing its slot) and the children's ends resumed it: one attempt before, one after.
    types = event_types(engine, run_id)
    assert types.count("RunParked") >= 1 and types.count("RunParked") == types.count("RunResumed")
    assert types.count("RunStarted") == types.count("RunParked") + 1


def test_a_parked_parent_gives_its_tenant_slot_to_its_children(
    app_client: TestClient, auth: dict[str, str], engine: Engine
) -> None:
    # Under a running limit of one, a parent that kept its dispatch slot while it waits would leave none
    # for the children it waits for: parking frees the slot as it frees the worker.
    assert app_client.put("/v1/limits", json={"max_running": 1}, headers=auth).status_code == 200
    steps = [
        {"key": "fan", "tool": "spawn", "input": {"task": "sleep", "count": 3, "context": {"duration": 0}}},
        {"key": "wait", "tool": "join", "input": {"step": "fan"}},
    ]
    run_id = start(app_client, auth, steps)
    run = detail_when_ended(app_client, auth, engine, run_id, timeout=60)
    assert run["status"] == "succeeded", (run["error"], run["steps"])
    assert run["steps"][1]["output"]["statuses"] == {"succeeded": 3}


def test_a_failing_step_fails_the_run_unless_it_may(
    app_client: TestClient, auth: dict[str, str], engine: Engine
) -> None:
    broken = {
        "key": "nap",
        "tool": "task",
        "input": {"task": "sleep", "context": {"duration": 0, "fail": True}},
    }
    after = {"key": "after", "tool": "transform", "input": {"value": "{{ context.tag }}"}}
    strict = start(app_client, auth, [broken, after], tag="x")
    tolerant = start(app_client, auth, [{**broken, "continue_on_error": True}, after], tag="x")

    failed = detail_when_ended(app_client, auth, engine, strict)
    assert failed["status"] == "failed" and "step 'nap' failed" in failed["error"]
    assert [(s["stepKey"], s["status"]) for s in failed["steps"]] == [("nap", "failed")]
    assert "failure requested" in failed["steps"][0]["error"]

    went_on = detail_when_ended(app_client, auth, engine, tolerant)
    assert went_on["status"] == "succeeded"
    assert [(s["stepKey"], s["status"]) for s in went_on["steps"]] == [
        ("nap", "failed"),
        ("after", "succeeded"),
    ]
    assert went_on["result"]["failed_steps"] == ["nap"] and went_on["steps"][1]["output"] == {"value": "x"}


def test_a_spawn_past_the_fan_out_bound_fails_its_step(
    app_client: TestClient, auth: dict[str, str], engine: Engine, settings: Settings
) -> None:
    """A reference that resolves at run time past what the document could check fails the step clearly."""
    spawn = {
        "key": "fan",
        "tool": "spawn",
        "input": {"task": "sleep", "items": "{{ context.items }}"},
        "continue_on_error": True,
    }
    join = {"key": "wait", "tool": "join", "input": {"step": "fan"}}
    run_id = start(app_client, auth, [spawn, join], items=list(range(settings.max_fan_out + 1)))
    run = detail_when_ended(app_client, auth, engine, run_id)
    assert [(s["stepKey"], s["status"]) for s in run["steps"]] == [("fan", "failed"), ("wait", "failed")]
    assert "fan-out limit" in run["steps"][0]["error"] and "started no children" in run["steps"][1]["error"]
    assert run["status"] == "failed" and "step 'wait' failed" in run["error"]
    tree = app_client.get(f"{RUNS}/{run_id}/tree", headers=auth).json()["items"]
    assert len(tree) == 1  # refused whole: not one child was created


def test_canceling_the_root_of_a_running_three_level_tree(
    app_client: TestClient, auth: dict[str, str], engine: Engine
) -> None:
    steps = [
        {"key": "fan", "tool": "spawn", "input": {"task": "sleep", "count": 3, "context": {"duration": 30}}},
        {"key": "wait", "tool": "join", "input": {"step": "fan"}},
    ]
    root = start(app_client, auth, steps)
    wait_until(lambda: "RunParked" in event_types(engine, root), timeout=20, message="the root parked")

    def children_listed() -> list[str]:
        items = app_client.get(f"{RUNS}/{root}/tree", headers=auth).json()["items"]
        return [r["id"] for r in items if r["depth"] == 1]

    # The tree is read from the read model, which may trail the log the root's parking was read from.
    wait_until(lambda: len(children_listed()) == 3, timeout=20, message="the tree shows the three children")
    children = children_listed()
    grandchildren = [
        app_client.post(
            "/v1/runs", json={"kind": "sleep", "params": {"duration": 30}, "parent_run_id": c}, headers=auth
        ).json()["id"]
        for c in children[:2]
    ]
    wait_until(
        lambda: any("RunStarted" in event_types(engine, c) for c in [*children, *grandchildren]),
        timeout=20,
        message="part of the tree running",
    )
    assert app_client.post(f"{RUNS}/{root}/cancel", headers=auth).status_code == 200

    tree = [root, *children, *grandchildren]

    def all_ended() -> bool:
        return all(set(event_types(engine, r)) & TERMINAL_EVENT_TYPES for r in tree)

    wait_until(all_ended, timeout=10, message="every run of the tree ended")  # well within the cancel grace
    assert all(event_types(engine, r)[-1] == "RunCanceled" for r in tree)
