"""`GET /v1/runs:activity`: the caller's runs per minute, checked minute by minute against the runs
themselves, scoped to the key, bounded, and served by its index."""

from __future__ import annotations

import itertools
import math
import re
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

from orchestrator.readmodel import activity
from tests.integration.test_api import settle, submit
from tests.services import wait_until

pytestmark = pytest.mark.usefixtures("system")

TERMINAL = ("succeeded", "failed", "canceled")


def _at(value: object) -> datetime:
    assert isinstance(value, str)
    return datetime.fromisoformat(value)


def _percentile(values: list[float], fraction: float) -> float:
    """PostgreSQL's percentile_cont: linear between the two nearest ranks."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _expected(runs: list[dict[str, Any]]) -> dict[datetime, dict[str, Any]]:
    """Each minute's buckets as the runs' own timestamps say they should be."""
    minutes: dict[datetime, dict[str, Any]] = defaultdict(lambda: {"started": 0, "waits": []})
    for run in runs:
        if run["started_at"]:
            started = _at(run["started_at"])
            due = _at(run["created_at"])
            if run["not_before"]:
                due = max(due, _at(run["not_before"]))
            bucket = minutes[started.replace(second=0, microsecond=0)]
            bucket["started"] += 1
            bucket["waits"].append((started - due).total_seconds())
        if run["finished_at"]:
            bucket = minutes[_at(run["finished_at"]).replace(second=0, microsecond=0)]
            bucket[run["status"]] = bucket.get(run["status"], 0) + 1
    return minutes


def test_activity_counts_each_minute_as_the_runs_say(
    app_client: TestClient, auth: dict[str, str], make_key: Callable[[str], str], engine: Engine
) -> None:
    ids = [
        submit(app_client, auth, params={"duration": 0})["id"],
        submit(app_client, auth, params={"duration": 0})["id"],
        submit(app_client, auth, params={"duration": 0, "fail": True})["id"],
        # Due a second from now: its queue wait counts from then, not from its creation.
        submit(
            app_client,
            auth,
            params={"duration": 0},
            not_before=(datetime.now(UTC) + timedelta(seconds=1)).isoformat(),
        )["id"],
    ]
    canceled = submit(app_client, auth, params={"duration": 60, "steps": 60})
    assert app_client.post(f"/v1/runs/{canceled['id']}/cancel", headers=auth).status_code == 200
    ids.append(canceled["id"])
    stranger = {"X-API-Key": make_key("activity-stranger")}
    submit(app_client, stranger, params={"duration": 0})

    def all_ended() -> list[dict[str, Any]] | None:
        settle(engine)
        runs = [app_client.get(f"/v1/runs/{run_id}", headers=auth).json() for run_id in ids]
        return runs if all(run["status"] in TERMINAL for run in runs) else None

    runs = wait_until(all_ended, timeout=30, interval=0.2, message="every run ended")
    assert sorted(run["status"] for run in runs) == [
        "canceled",
        "failed",
        "succeeded",
        "succeeded",
        "succeeded",
    ]

    body = app_client.get("/v1/runs:activity", headers=auth).json()
    assert body["minutes"] == 60 and len(body["data"]) == 60
    minutes = [_at(m["minute"]) for m in body["data"]]
    assert all(later - earlier == timedelta(minutes=1) for earlier, later in itertools.pairwise(minutes))
    as_of = _at(body["as_of"])
    assert minutes[-1] == as_of.replace(second=0, microsecond=0)  # the current minute last
    assert all(_at(run["finished_at"]) <= as_of for run in runs)

    expected = _expected(runs)
    assert set(expected) <= set(minutes)
    for shown in body["data"]:
        want = expected.get(_at(shown["minute"]), {"started": 0, "waits": []})
        assert shown["started"] == want["started"], shown
        for status in TERMINAL:
            assert shown[status] == want.get(status, 0), shown
        if want["waits"]:
            assert shown["queue_wait_p50"] == pytest.approx(_percentile(want["waits"], 0.5), abs=1e-6)
            assert shown["queue_wait_p95"] == pytest.approx(_percentile(want["waits"], 0.95), abs=1e-6)
        else:
            assert shown["queue_wait_p50"] is None and shown["queue_wait_p95"] is None
    totals = {name: sum(m[name] for m in body["data"]) for name in ("started", *TERMINAL)}
    started = sum(1 for run in runs if run["started_at"])
    assert totals == {"started": started, "succeeded": 3, "failed": 1, "canceled": 1}

    # The stranger's tenant sees its one run only, none of these.
    theirs = app_client.get("/v1/runs:activity", params={"minutes": 5}, headers=stranger).json()
    assert len(theirs["data"]) == 5
    assert sum(m["succeeded"] for m in theirs["data"]) == 1
    assert sum(m["started"] for m in theirs["data"]) == 1
    assert sum(m["failed"] + m["canceled"] for m in theirs["data"]) == 0
    nobody = app_client.get("/v1/runs:activity", headers={"X-API-Key": make_key("activity-nobody")}).json()
    assert all(m["started"] == m["succeeded"] == m["failed"] == m["canceled"] == 0 for m in nobody["data"])

    one = app_client.get("/v1/runs:activity", params={"minutes": 1}, headers=auth).json()
    assert len(one["data"]) == 1 and one["data"][0]["minute"] == body["data"][-1]["minute"]


@pytest.mark.parametrize("minutes", ["0", "1441", "-5", "an hour"])
def test_minutes_out_of_bounds_is_a_422(app_client: TestClient, auth: dict[str, str], minutes: str) -> None:
    response = app_client.get("/v1/runs:activity", params={"minutes": minutes}, headers=auth)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "minutes"]


def test_activity_needs_a_key(app_client: TestClient) -> None:
    assert app_client.get("/v1/runs:activity").status_code == 401


def test_the_window_is_one_range_scan_of_its_index(engine: Engine) -> None:
    """The window's condition must match `runs_tenant_moved_idx` exactly. The session's `runs` is too
    small for the planner to prefer any index, so the plan is taken over a temporary `runs` (it shadows
    the real one in this transaction) built LIKE the real table, indexes included, holding a day of a
    busy tenant's runs: the hour is found by an index condition on both columns, not by a filter."""
    sql = activity.statement("explain-0", 60).compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
    )
    with engine.connect() as conn:
        conn.execute(sa.text("CREATE TEMP TABLE runs (LIKE public.runs INCLUDING ALL) ON COMMIT DROP"))
        conn.execute(
            sa.text(
                "INSERT INTO runs (id, tenant_id, kind, status, root_id, depth, attempt, max_attempts,"
                " cancel_requested, progress_done, counts, params, labels, metrics, event_count,"
                " last_position, created_at, started_at, finished_at, updated_at)"
                " SELECT gen_random_uuid(), 'explain-' || (g % 4), 'sleep', 'succeeded', gen_random_uuid(),"
                " 0, 1, 3, false, 0, '{}', '{}', '{}', '{}', 3, g, now() - g * interval '1 second',"
                " now() - g * interval '1 second', now() - g * interval '1 second', now()"
                " FROM generate_series(1, 40000) AS g"
            )
        )
        conn.execute(sa.text("ANALYZE runs"))
        plan = "\n".join(conn.execute(sa.text(f"EXPLAIN {sql}")).scalars())
        conn.rollback()
    assert re.search(
        r"Index Cond: \(\(tenant_id = 'explain-0'::text\) AND \(COALESCE\(finished_at, started_at\) >=", plan
    ), plan
    assert len(re.findall(r"\bon (?:pg_temp\w*\.)?runs\b(?!_)", plan)) == 1, plan  # read once, for the CTE
