"""The figures every API replica reports alike, read from PostgreSQL at scrape time in four small reads.

Run counts and latency histograms come from the counters the runs projection keeps beside its rows
(`run_counts`, `run_started`, `run_latency`): they agree with the log as of the projector's checkpoint,
cost a read of a few rows per tenant and kind however long the history, and two replicas scraped at once
give the same numbers, since nothing is counted in a process. Then the log's head and lost attempts (a
partial index), the outbox's unsent rows (a partial index), and one row per projection checkpoint.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.projections.run_metrics import BUCKETS
from orchestrator.store.schema import (
    events,
    outbox,
    projection_checkpoints,
    run_counts,
    run_latency,
    run_started,
)

OTHER_TENANTS = "other"
FINISHED = ("succeeded", "failed", "canceled")


@dataclass(frozen=True)
class RunCounts:
    """Runs of one (tenant, kind) by status, and how many of them ever started."""

    by_status: dict[str, int] = field(default_factory=dict)
    started: int = 0

    @property
    def submitted(self) -> int:
        return sum(self.by_status.values())


@dataclass(frozen=True)
class Histogram:
    """Cumulative counts per upper bound (the last one +Inf, equal to `count`) and the sum."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    count: int
    total: float


@dataclass(frozen=True)
class ProjectionLag:
    name: str
    events: int  # log head minus checkpoint
    seconds: float  # age of the oldest event not yet applied; 0 when caught up


@dataclass(frozen=True)
class Snapshot:
    runs: dict[tuple[str, str], RunCounts]  # (tenant label, kind) -> counts; tenants bounded by top_tenants
    queue_wait: dict[str, Histogram]  # by kind
    duration: dict[str, Histogram]
    log_head: int
    attempts_lost: int
    outbox_due: int  # unsent rows the relay should publish now
    outbox_scheduled: int  # unsent rows waiting for their not_before (retry backoff)
    outbox_oldest_due_seconds: float
    projections: list[ProjectionLag]


def _run_counts(conn: Connection, top_tenants: int) -> dict[tuple[str, str], RunCounts]:
    # One statement: the counts by status, and beside them (status NULL) how many ever started.
    by_status = sa.select(
        run_counts.c.tenant_id, run_counts.c.kind, run_counts.c.status, sa.func.sum(run_counts.c.count)
    ).group_by(run_counts.c.tenant_id, run_counts.c.kind, run_counts.c.status)
    started_rows = sa.select(
        run_started.c.tenant_id, run_started.c.kind, sa.null().cast(sa.Text), run_started.c.count
    )
    rows = [(t, k, s, int(n)) for t, k, s, n in conn.execute(by_status.union_all(started_rows))]
    per_tenant: dict[str, int] = defaultdict(int)
    for tenant, _kind, status, n in rows:
        if status is not None:
            per_tenant[tenant] += n
    # The busiest tenants keep their name, the rest share one label: a bounded number of series however
    # many tenants there are. Ties go by name, so every replica picks the same ones.
    ranked = sorted(per_tenant, key=lambda t: (-per_tenant[t], t))
    named = set(ranked[:top_tenants])
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    started: dict[tuple[str, str], int] = defaultdict(int)
    for tenant, kind, status, n in rows:
        label = (tenant if tenant in named else OTHER_TENANTS, kind)
        if status is None:
            started[label] += n
        else:
            counts[label][status] += n
    labels = set(counts) | set(started)
    return {label: RunCounts(dict(counts.get(label, {})), started.get(label, 0)) for label in labels}


def _histograms(conn: Connection) -> dict[str, dict[str, Histogram]]:
    """metric (queue_wait, duration) -> kind -> histogram, from the per-bound counts."""
    query = sa.select(
        run_latency.c.metric, run_latency.c.kind, run_latency.c.le, run_latency.c.count, run_latency.c.total
    )
    per_bound: dict[tuple[str, str], dict[float, tuple[int, float]]] = defaultdict(dict)
    for metric, kind, le, n, total in conn.execute(query):
        per_bound[(metric, kind)][float(le)] = (int(n), float(total))
    found: dict[str, dict[str, Histogram]] = {"queue_wait": {}, "duration": {}}
    for (metric, kind), counts in per_bound.items():
        bounds = BUCKETS.get(metric)
        if bounds is None:
            continue
        cumulative, running = [], 0
        for bound in (*bounds, math.inf):
            running += counts.get(bound, (0, 0.0))[0]
            cumulative.append(running)
        total = sum(seconds for _n, seconds in counts.values())
        found[metric][kind] = Histogram(bounds, tuple(cumulative), running, max(0.0, total))
    return found


def _log_and_outbox(conn: Connection) -> tuple[Any, ...]:
    unsent = outbox.c.sent_at.is_(None)
    due = sa.and_(unsent, outbox.c.not_before <= sa.func.now())
    query = sa.select(
        sa.select(sa.func.coalesce(sa.func.max(events.c.position), 0)).scalar_subquery(),
        sa.select(sa.func.count()).where(events.c.type == "AttemptLost").scalar_subquery(),
        sa.select(sa.func.count()).select_from(outbox).where(due).scalar_subquery(),
        sa.select(sa.func.count()).select_from(outbox).where(unsent, ~due).scalar_subquery(),
        sa.select(sa.func.coalesce(sa.extract("epoch", sa.func.now() - sa.func.min(outbox.c.not_before)), 0))
        .where(due)
        .scalar_subquery(),
    )
    return tuple(conn.execute(query).one())


def _projection_lags(conn: Connection, head: int, names: Sequence[str]) -> list[ProjectionLag]:
    oldest = (
        sa.select(events.c.recorded_at)
        .where(events.c.position > projection_checkpoints.c.position)
        .order_by(events.c.position)
        .limit(1)
        .scalar_subquery()
    )
    age = sa.func.coalesce(sa.extract("epoch", sa.func.clock_timestamp() - oldest), 0)
    query = sa.select(projection_checkpoints.c.name, projection_checkpoints.c.position, age).where(
        projection_checkpoints.c.name.in_(names)
    )
    found = {name: (int(position), float(seconds)) for name, position, seconds in conn.execute(query)}
    lags = []
    for name in names:
        # A projection that never ran has no checkpoint: it is behind by the whole log.
        position, seconds = found.get(name, (0, 0.0))
        lags.append(ProjectionLag(name, max(0, head - position), max(0.0, seconds)))
    return lags


def read(conn: Connection, top_tenants: int, projections: Sequence[str]) -> Snapshot:
    counts = _run_counts(conn, top_tenants)
    histograms = _histograms(conn)
    head, lost, due, scheduled, oldest_due = _log_and_outbox(conn)
    return Snapshot(
        runs=counts,
        queue_wait=histograms["queue_wait"],
        duration=histograms["duration"],
        log_head=int(head),
        attempts_lost=int(lost),
        outbox_due=int(due),
        outbox_scheduled=int(scheduled),
        outbox_oldest_due_seconds=max(0.0, float(oldest_due)),
        projections=_projection_lags(conn, int(head), projections),
    )
