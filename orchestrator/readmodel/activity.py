"""A tenant's recent activity per minute, from the `runs` read model: runs started and finished (by
terminal status) in each minute, and the queue wait of the runs that started in it.

One statement: the runs that started or finished in the window come from one range scan of
`runs_tenant_moved_idx` on `coalesce(finished_at, started_at)` (a run that started in the window finished,
if at all, later, so that one expression covers both), each such run gives a start mark and a finish mark,
and every minute of the window is joined to its marks, so minutes with nothing in them are there too. The
window ends at the database's clock, the one that stamped the events, so the current minute is the last;
that time comes back as `as_of`, so a live client knows which events it has yet to add.

Queue wait is `started_at` (the first attempt's start) minus the moment the run became due: its
`created_at`, or its `not_before` when that is later, so a run held back on purpose does not count as
queued. It includes the time a tenant's running limit kept the run back, which is part of the wait a
tenant sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.store.schema import runs
from schemas.api import MAX_ACTIVITY_MINUTES

MAX_MINUTES = MAX_ACTIVITY_MINUTES
FINISHED_STATUSES = ("succeeded", "failed", "canceled")
_STARTED = "started"


@dataclass(frozen=True)
class MinuteActivity:
    minute: datetime  # the minute's start
    started: int
    succeeded: int
    failed: int
    canceled: int
    queue_wait_p50: float | None  # seconds; None in a minute where no run started
    queue_wait_p95: float | None


@dataclass(frozen=True)
class Activity:
    as_of: datetime  # the database's time of the read: an event recorded later is in none of the minutes
    minutes: list[MinuteActivity]


def moved_at() -> sa.ColumnElement[datetime]:
    """The last time a run started or finished: the expression `runs_tenant_moved_idx` is built on, which
    the window's condition must repeat exactly for the planner to use it."""
    return sa.func.coalesce(runs.c.finished_at, runs.c.started_at)


def statement(
    tenant_id: str, minutes: int
) -> sa.Select[datetime, int, int, int, int, float, float, datetime]:
    """The one query behind `per_minute` (also what tests EXPLAIN)."""
    if not 1 <= minutes <= MAX_MINUTES:
        raise ValueError(f"minutes must be within 1..{MAX_MINUTES}")
    now_minute = sa.func.date_trunc("minute", sa.func.now())
    since = now_minute - sa.func.make_interval(0, 0, 0, 0, 0, sa.literal(minutes - 1, sa.Integer))

    moved = (
        sa.select(runs.c.status, runs.c.created_at, runs.c.not_before, runs.c.started_at, runs.c.finished_at)
        .where(runs.c.tenant_id == tenant_id, moved_at() >= since)
        .cte("moved")
    )
    due = sa.func.greatest(moved.c.created_at, moved.c.not_before)  # greatest() skips a NULL not_before
    wait = sa.func.extract("epoch", moved.c.started_at - due)
    starts = sa.select(
        sa.func.date_trunc("minute", moved.c.started_at).label("minute"),
        sa.literal(_STARTED).label("what"),
        wait.label("wait"),
    ).where(moved.c.started_at >= since)
    finishes = sa.select(
        sa.func.date_trunc("minute", moved.c.finished_at).label("minute"),
        moved.c.status.label("what"),
        sa.null().label("wait"),
    ).where(moved.c.finished_at >= since)
    marks = sa.union_all(starts, finishes).subquery("marks")

    every_minute = sa.func.generate_series(since, now_minute, sa.literal_column("interval '1 minute'"))
    window = sa.select(every_minute.label("minute")).subquery("window")

    def counted(what: str) -> sa.ColumnElement[int]:
        return sa.func.count().filter(marks.c.what == what)

    # percentile_cont skips NULLs, and only start marks carry a wait.
    def percentile(fraction: float) -> sa.ColumnElement[float]:
        return sa.func.percentile_cont(fraction).within_group(marks.c.wait)

    return (
        sa.select(
            window.c.minute,
            counted(_STARTED),
            *(counted(status) for status in FINISHED_STATUSES),
            percentile(0.5),
            percentile(0.95),
            sa.func.now(),  # the same on every row (the transaction's start): the read's as-of time
        )
        .select_from(window.outerjoin(marks, marks.c.minute == window.c.minute))
        .group_by(window.c.minute)
        .order_by(window.c.minute)
    )


def per_minute(conn: Connection, tenant_id: str, minutes: int) -> Activity:
    """The tenant's last `minutes` minutes, oldest first, the current (unfinished) minute last."""
    rows = conn.execute(statement(tenant_id, minutes)).all()
    found = [
        MinuteActivity(
            minute=minute,
            started=started,
            succeeded=succeeded,
            failed=failed,
            canceled=canceled,
            queue_wait_p50=None if p50 is None else float(p50),
            queue_wait_p95=None if p95 is None else float(p95),
        )
        for minute, started, succeeded, failed, canceled, p50, p95, _ in rows
    ]
    return Activity(as_of=rows[-1][-1], minutes=found)
