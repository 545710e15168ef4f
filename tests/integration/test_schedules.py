"""Recurring schedules against PostgreSQL: `/v1/schedules`, and the scheduler ticked with an injected now.
Schedules here are yearly, so a scheduler running elsewhere in the session (on the real clock) never fires
them; the tests move time to their slot instead."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from orchestrator.processes.scheduler import idempotency_key, run_scheduler, tick
from orchestrator.services import RunService
from orchestrator.store.events import read_stream
from orchestrator.store.schema import events
from tests.services import wait_until

SCHEDULES = "/v1/schedules"
YEARLY = "0 0 1 1 *"

pytestmark = pytest.mark.integration


def create(client: TestClient, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    made = client.post(
        SCHEDULES, json={"name": "nightly", "cron": YEARLY, "kind": "sleep", **body}, headers=auth
    )
    assert made.status_code == 201, made.text
    return made.json()  # type: ignore[no-any-return]


def runs_of(engine: Engine, schedule_id: str) -> list[dict[str, Any]]:
    query = sa.select(events.c.data).where(
        events.c.type == "RunCreated", events.c.data["labels"]["schedule_id"].astext == schedule_id
    )
    with engine.connect() as conn:
        return [row.data for row in conn.execute(query)]


def stream_types(engine: Engine, schedule_id: str) -> list[str]:
    with engine.connect() as conn:
        return [r.type for r in read_stream(conn, UUID(schedule_id))]


def due(view: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(view["next_due_at"])


def test_a_due_schedule_fires_one_run_however_often_the_tick_repeats(
    app_client: TestClient, auth: dict[str, str], service: RunService, engine: Engine
) -> None:
    view = create(app_client, auth, params={"duration": 0}, labels={"team": "ops"})
    assert view["enabled"] and view["timezone"] == "UTC" and view["missed"] == "skip"
    at = due(view) + timedelta(seconds=5)

    tick(service, due(view) - timedelta(seconds=1))  # not yet
    assert runs_of(engine, view["id"]) == []
    for _ in range(3):
        tick(service, at)

    [run] = runs_of(engine, view["id"])
    assert run["kind"] == "sleep" and run["labels"] == {"team": "ops", "schedule_id": view["id"]}
    assert stream_types(engine, view["id"]) == ["ScheduleCreated", "ScheduleFired"]
    after = app_client.get(f"{SCHEDULES}/{view['id']}", headers=auth).json()
    assert after["last_run_id"] == run["run_id"]
    assert after["last_fired_at"] == view["next_due_at"]
    assert due(after) > due(view)


def test_the_same_slot_submitted_again_answers_the_first_run(
    app_client: TestClient, auth: dict[str, str], service: RunService, engine: Engine
) -> None:
    """As after a crash that lost the schedule's own write: the slot's idempotency key names the run."""
    view = create(app_client, auth)
    tick(service, due(view))
    [run] = runs_of(engine, view["id"])
    with engine.begin() as conn:  # put the schedule back on the slot it fired
        conn.execute(
            sa.text("UPDATE schedules SET next_due_at = :due WHERE id = :id"),
            {"due": due(view), "id": view["id"]},
        )
    tick(service, due(view))
    assert [r["run_id"] for r in runs_of(engine, view["id"])] == [run["run_id"]]


@pytest.mark.parametrize(("policy", "fired"), [("skip", 0), ("catch_up_one", 1)])
def test_after_an_outage_the_missed_policy_decides(
    app_client: TestClient,
    auth: dict[str, str],
    service: RunService,
    engine: Engine,
    policy: str,
    fired: int,
) -> None:
    view = create(app_client, auth, cron="0 0 * * *", missed=policy)
    tick(service, due(view) + timedelta(days=3, hours=2))  # 4 daily slots due, the latest 2 hours old
    assert len(runs_of(engine, view["id"])) == fired
    types = stream_types(engine, view["id"])
    assert types == ["ScheduleCreated", "ScheduleSkipped"] + (["ScheduleFired"] if fired else [])
    with engine.connect() as conn:
        skipped = [r.data for r in read_stream(conn, UUID(view["id"])) if r.type == "ScheduleSkipped"]
    assert skipped[0]["missed"] == 4 - fired


def test_a_paused_schedule_does_not_fire_and_resumes_at_its_next_slot(
    app_client: TestClient, auth: dict[str, str], service: RunService, engine: Engine
) -> None:
    view = create(app_client, auth)
    paused = app_client.patch(f"{SCHEDULES}/{view['id']}", json={"enabled": False}, headers=auth)
    assert paused.status_code == 200 and paused.json()["next_due_at"] is None
    tick(service, due(view) + timedelta(seconds=1))
    assert runs_of(engine, view["id"]) == []
    resumed = app_client.patch(f"{SCHEDULES}/{view['id']}", json={"enabled": True}, headers=auth).json()
    assert resumed["enabled"] and resumed["next_due_at"] == view["next_due_at"]
    assert stream_types(engine, view["id"]) == ["ScheduleCreated", "ScheduleUpdated", "ScheduleUpdated"]


@pytest.mark.parametrize(
    ("body", "at"),
    [
        ({"cron": "61 * * * *"}, ["body", "cron"]),
        ({"cron": "* * * * * *"}, ["body", "cron"]),
        ({"kind": "no-such-kind"}, ["body", "kind"]),
        ({"missed": "always"}, ["body", "missed"]),
    ],
)
def test_a_schedule_that_cannot_fire_is_refused(
    app_client: TestClient, auth: dict[str, str], body: dict[str, Any], at: list[Any]
) -> None:
    made = app_client.post(
        SCHEDULES, json={"name": "x", "cron": YEARLY, "kind": "sleep", **body}, headers=auth
    )
    assert made.status_code == 422, made.text
    assert at in [item["loc"] for item in made.json()["detail"]]


def test_another_tenant_cannot_see_or_change_a_schedule(
    app_client: TestClient, auth: dict[str, str], make_key: Callable[[str], str], engine: Engine
) -> None:
    view = create(app_client, auth)
    other = {"Authorization": f"Bearer {make_key('tenant-other-' + view['id'][:8])}"}
    url = f"{SCHEDULES}/{view['id']}"
    assert app_client.get(url, headers=other).status_code == 404
    assert app_client.patch(url, json={"enabled": False}, headers=other).status_code == 404
    assert app_client.delete(url, headers=other).status_code == 404
    assert app_client.get(SCHEDULES, headers=other).json()["data"] == []
    assert [s["id"] for s in app_client.get(SCHEDULES, headers=auth).json()["data"]] == [view["id"]]

    assert app_client.delete(url, headers=auth).status_code == 204
    assert app_client.get(url, headers=auth).status_code == 404
    assert stream_types(engine, view["id"])[-1] == "ScheduleDeleted"


def test_a_slot_whose_key_the_tenant_used_is_missed_and_other_schedules_still_fire(
    app_client: TestClient, auth: dict[str, str], service: RunService, engine: Engine
) -> None:
    """A tenant cannot stall the scheduler by taking a slot's idempotency key with another request."""
    taken = create(app_client, auth, name="taken")
    other = create(app_client, auth, name="other")
    key = idempotency_key(UUID(taken["id"]), due(taken))
    squatted = app_client.post(
        "/v1/runs", json={"kind": "sleep", "labels": {"mine": "1"}}, headers={**auth, "Idempotency-Key": key}
    )
    assert squatted.status_code == 201, squatted.text
    report = tick(service, due(taken) + timedelta(seconds=1))
    assert report.failed >= 1
    assert runs_of(engine, taken["id"]) == []
    assert stream_types(engine, taken["id"]) == ["ScheduleCreated", "ScheduleSkipped"]
    assert len(runs_of(engine, other["id"])) == 1
    after = app_client.get(f"{SCHEDULES}/{taken['id']}", headers=auth).json()
    assert due(after) > due(taken)  # it moved on to its next slot


def test_the_scheduler_loop_ticks_on_its_clock_until_stopped(
    app_client: TestClient, auth: dict[str, str], service: RunService, engine: Engine
) -> None:
    view = create(app_client, auth)
    stop = threading.Event()
    loop = threading.Thread(target=run_scheduler, args=(service, stop, lambda: due(view)), daemon=True)
    loop.start()
    try:
        wait_until(lambda: runs_of(engine, view["id"]), message="the scheduled run")
    finally:
        stop.set()
        loop.join(timeout=30)
    assert not loop.is_alive()
    assert len(runs_of(engine, view["id"])) == 1


def test_a_schedule_id_is_no_run_id(app_client: TestClient, auth: dict[str, str]) -> None:
    """Schedules share the event log with runs; no run route takes a schedule's stream for a run."""
    view = create(app_client, auth)
    run = f"/v1/runs/{view['id']}"
    for method, url in [
        ("GET", run),
        ("GET", f"{run}/events"),
        ("GET", f"{run}/stream"),
        ("POST", f"{run}/cancel"),
        ("POST", f"{run}:retry"),
    ]:
        assert app_client.request(method, url, headers=auth).status_code == 404, (method, url)
    child = app_client.post("/v1/runs", json={"kind": "sleep", "parent_run_id": view["id"]}, headers=auth)
    assert child.status_code == 422, child.text
