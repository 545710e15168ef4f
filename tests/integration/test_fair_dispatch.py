"""Fair dispatch, running limits, priorities and delayed runs, through the API with the session's real
relay and worker. Each tenant is a new one, so limits set here touch no other test."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from orchestrator.settings import Settings
from orchestrator.store.schema import events, outbox
from tests.services import wait_until

pytestmark = pytest.mark.usefixtures("system")


def _auth(make_key: Callable[[str], str]) -> tuple[str, dict[str, str]]:
    tenant = f"fair-{uuid.uuid4().hex[:8]}"
    return tenant, {"Authorization": f"Bearer {make_key(tenant)}"}


def _submit(client: TestClient, auth: dict[str, str], *runs: dict[str, Any]) -> list[UUID]:
    response = client.post("/v1/runs:batch", json={"runs": list(runs)}, headers=auth)
    assert response.status_code == 201, response.text
    return [UUID(run["id"]) for run in response.json()["data"]]


def _sleep(duration: float = 0.0, **fields: Any) -> dict[str, Any]:
    return {"kind": "sleep", "params": {"duration": duration}, **fields}


def _status(client: TestClient, auth: dict[str, str], run_id: UUID) -> str:
    response = client.get(f"/v1/runs/{run_id}", headers=auth)
    assert response.status_code == 200
    status: str = response.json()["status"]
    return status


def _positions(engine: Engine, run_ids: list[UUID], event_type: str) -> dict[UUID, int]:
    query = sa.select(events.c.stream_id, events.c.position).where(
        events.c.stream_id.in_(run_ids), events.c.type == event_type
    )
    with engine.connect() as conn:
        return {run_id: int(position) for run_id, position in conn.execute(query)}


def _sent(engine: Engine, run_id: UUID) -> datetime | None:
    query = sa.select(sa.func.max(outbox.c.sent_at)).where(outbox.c.run_id == run_id)
    with engine.connect() as conn:
        sent: datetime | None = conn.execute(query).scalar()
        return sent


def _finished(client: TestClient, auth: dict[str, str], runs: list[UUID]) -> bool:
    return all(_status(client, auth, run_id) == "succeeded" for run_id in runs)


def test_one_run_behind_another_tenants_long_queue_leaves_in_the_first_batch(
    app_client: TestClient, idle_client: TestClient, make_key: Callable[[str], str], engine: Engine
) -> None:
    # Both become due at the same moment, the big tenant's 150 rows first in the outbox: without fair
    # dispatch the single run would wait for the 100-row batch ahead of it. That holds only if both were
    # submitted before that moment: on a slow machine, try again with a later one.
    for delay in (1.0, 3.0, 8.0):
        big, big_auth = _auth(make_key)
        _, small_auth = _auth(make_key)
        due = datetime.now(UTC) + timedelta(seconds=delay)
        _submit(idle_client, big_auth, *[_sleep(not_before=due.isoformat()) for _ in range(150)])
        (single,) = _submit(app_client, small_auth, _sleep(not_before=due.isoformat()))
        if datetime.now(UTC) < due:
            break
    else:
        pytest.fail("could not submit 151 runs within 8 s")
    sent = wait_until(lambda: _sent(engine, single), timeout=20, message="the single run published")
    ahead = sa.select(sa.func.count()).where(outbox.c.tenant_id == big, outbox.c.sent_at < sent)
    with engine.connect() as conn:
        assert conn.execute(ahead).scalar_one() < 100  # it left in the relay's first batch
    wait_until(lambda: _finished(app_client, small_auth, [single]), timeout=20, message="the single run")


def test_with_no_limit_set_a_small_tenant_starts_before_a_big_backlog_drains(
    app_client: TestClient, settings: Settings, make_key: Callable[[str], str], engine: Engine
) -> None:
    """Acceptance, scaled to the session's queue cap: tenant A queues far more than the cap, then B
    submits 10. From the log: all of B's runs start while A finishes at most the cap plus two turns per B
    run (and some slack for the turns the relay takes with A when several slots free at once)."""
    cap = settings.queue_max_in_flight
    assert cap is not None and settings.tenant_max_running is None
    _, big_auth = _auth(make_key)
    _, small_auth = _auth(make_key)
    backlog = _submit(app_client, big_auth, *[_sleep() for _ in range(8 * cap)])
    small = _submit(app_client, small_auth, *[_sleep() for _ in range(10)])
    try:
        starts = wait_until(
            lambda: (found := _positions(engine, small, "RunStarted")) and len(found) == 10 and found,
            timeout=60,
            message="all of B's runs started",
        )
    finally:  # A's rest would hold up the tests after this one
        app_client.post("/v1/runs:cancel", json={}, headers=big_auth)
    submitted = min(_positions(engine, small, "RunCreated").values())
    a_ended = [
        p
        for p in _positions(engine, backlog, "RunSucceeded").values()
        if submitted < p < max(starts.values())
    ]
    assert len(a_ended) <= cap + 2 * 10 + 10, f"A finished {len(a_ended)} runs while B's started"
    wait_until(lambda: _finished(app_client, small_auth, small), timeout=30, message="B's runs")


def test_a_limit_of_one_keeps_the_second_run_pending_until_the_first_ends(
    app_client: TestClient, make_key: Callable[[str], str], engine: Engine
) -> None:
    _, auth = _auth(make_key)
    put = app_client.put("/v1/limits", json={"max_running": 1}, headers=auth)
    assert put.status_code == 200, put.text
    assert put.json()["effective_max_running"] == 1
    runs = _submit(app_client, auth, _sleep(1.0), _sleep(1.0))
    started = wait_until(lambda: _positions(engine, runs, "RunStarted"), timeout=20, message="a start")
    (first,) = started
    (second,) = set(runs) - {first}
    limits = app_client.get("/v1/limits", headers=auth).json()
    assert limits["running"] == {"sleep": 1} and limits["max_running"] == 1
    assert _status(app_client, auth, second) == "pending"
    while True:  # for the whole of the first run, read from the write side (the read model may lag)
        sent = _sent(engine, second)  # read first: once it is sent, the first run must have ended before
        ended = bool(_positions(engine, [first], "RunSucceeded"))
        assert sent is None or ended
        if ended:
            break
    wait_until(lambda: _finished(app_client, auth, runs), timeout=20, message="both runs")
    # From the log: the second started only after the first had ended.
    assert (
        _positions(engine, [second], "RunStarted")[second]
        > _positions(engine, [first], "RunSucceeded")[first]
    )
    assert app_client.get("/v1/limits", headers=auth).json()["running"] == {}


def _most_running_at_once(engine: Engine, runs: list[UUID]) -> int:
    """From the log: the most of these runs between their RunStarted and their terminal event at once."""
    starts = _positions(engine, runs, "RunStarted")
    ends = _positions(engine, runs, "RunSucceeded")
    moments = sorted([(starts[r], 1) for r in runs] + [(ends[r], -1) for r in runs])
    running = most = 0
    for _, step in moments:
        running += step
        most = max(most, running)
    return most


def test_a_tenant_at_its_limit_never_exceeds_it(
    app_client: TestClient, make_key: Callable[[str], str], engine: Engine
) -> None:
    _, auth = _auth(make_key)
    assert app_client.put("/v1/limits", json={"max_running": 2}, headers=auth).status_code == 200
    runs = _submit(app_client, auth, *[_sleep(0.3) for _ in range(6)])
    wait_until(lambda: _finished(app_client, auth, runs), timeout=30, message="six runs")
    assert 1 <= _most_running_at_once(engine, runs) <= 2


def test_priorities_order_a_tenants_waiting_runs(
    app_client: TestClient, make_key: Callable[[str], str], engine: Engine
) -> None:
    _, auth = _auth(make_key)
    put = app_client.put("/v1/limits", json={"per_kind": {"sleep": 1}}, headers=auth)
    assert put.status_code == 200 and put.json()["per_kind"] == {"sleep": 1}, put.text
    (blocker,) = _submit(app_client, auth, _sleep(0.5))
    wait_until(lambda: _positions(engine, [blocker], "RunStarted"), timeout=20, message="the blocker")
    low = _submit(app_client, auth, _sleep(), _sleep())
    (high,) = _submit(app_client, auth, _sleep(priority=9))
    assert app_client.get(f"/v1/runs/{high}", headers=auth).json()["priority"] == 9
    wait_until(lambda: _finished(app_client, auth, [*low, high]), timeout=20, message="the queued runs")
    started = _positions(engine, [*low, high], "RunStarted")
    assert started[high] < min(started[run] for run in low)  # queued last, started first
    assert started[low[0]] < started[low[1]]  # equal priority: the longest waiting first


def test_not_before_holds_a_run_back(app_client: TestClient, auth: dict[str, str], engine: Engine) -> None:
    not_before = datetime.now(UTC) + timedelta(seconds=1.5)
    created = app_client.post("/v1/runs", json=_sleep(not_before=not_before.isoformat()), headers=auth)
    assert created.status_code == 201, created.text
    run_id = UUID(created.json()["id"])
    assert datetime.fromisoformat(created.json()["not_before"]) == not_before
    wait_until(lambda: app_client.get(f"/v1/runs/{run_id}", headers=auth).json()["not_before"], timeout=10)
    assert _status(app_client, auth, run_id) == "pending" and _sent(engine, run_id) is None
    wait_until(lambda: _finished(app_client, auth, [run_id]), timeout=20, message="the delayed run")
    started_at = app_client.get(f"/v1/runs/{run_id}", headers=auth).json()["started_at"]
    assert datetime.fromisoformat(started_at) >= not_before
    past = (datetime.now(UTC) - timedelta(days=3)).isoformat()  # a past time is due at once
    (due,) = _submit(app_client, auth, _sleep(not_before=past))
    wait_until(lambda: _finished(app_client, auth, [due]), timeout=20, message="the past-due run")


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"priority": 10}, ["priority"]),
        ({"priority": -1}, ["priority"]),
        ({"priority": "high"}, ["priority"]),
        ({"not_before": "2030-01-01T00:00:00"}, ["not_before"]),  # no time zone
        ({"not_before": "soon"}, ["not_before"]),
        ({"not_before": (datetime.now(UTC) + timedelta(days=400)).isoformat()}, ["not_before"]),
    ],
)
def test_bad_priorities_and_times_are_422s(
    app_client: TestClient, auth: dict[str, str], fields: dict[str, Any], loc: list[str]
) -> None:
    one = app_client.post("/v1/runs", json=_sleep(**fields), headers=auth)
    assert one.status_code == 422 and one.json()["detail"][0]["loc"] == ["body", *loc], one.text
    batch = app_client.post("/v1/runs:batch", json={"runs": [_sleep(), _sleep(**fields)]}, headers=auth)
    assert batch.status_code == 422 and batch.json()["detail"][0]["loc"] == ["body", "runs", 1, *loc]


@pytest.mark.parametrize(
    "body",
    [
        {"max_running": -1},
        {"max_running": "many"},
        {"per_kind": {"no_such_kind": 1}},
        {"per_kind": {"sleep": 0}},
        {"tenant_id": "someone-else"},
    ],
)
def test_bad_limits_are_422s(app_client: TestClient, auth: dict[str, str], body: dict[str, Any]) -> None:
    response = app_client.put("/v1/limits", json=body, headers=auth)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][0] == "body", response.text
    assert app_client.get("/v1/limits", headers=auth).json()["max_running"] is None  # nothing was set


def test_limits_are_the_callers_tenants_own(app_client: TestClient, make_key: Callable[[str], str]) -> None:
    _, one = _auth(make_key)
    _, other = _auth(make_key)
    assert app_client.put("/v1/limits", json={"max_running": 4}, headers=one).status_code == 200
    assert app_client.get("/v1/limits", headers=other).json()["max_running"] is None
    assert app_client.get("/v1/limits").status_code == 401
