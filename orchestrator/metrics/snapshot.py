"""The figures every API replica reports alike, read from PostgreSQL at scrape time in four statements.

Run counts come from the `runs` read model (one row per run, folded from the log), so they agree with the
log as of the projector's checkpoint, and two replicas scraped at once give the same numbers: nothing is
counted in a process. Each statement is one pass over a table or an index: the `runs` read model (counts,
then the latency histograms), the log's head and lost attempts (a partial index, migration 0009), the
outbox's unsent rows (a partial index), and one row per projection checkpoint.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.store.schema import events, outbox, projection_checkpoints, runs

OTHER_TENANTS = "other"
FINISHED = ("succeeded", "failed", "canceled")
# Seconds. Queue wait is creation to first start; duration is first start to the end.
QUEUE_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
DURATION_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)


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
    query = sa.select(
        runs.c.tenant_id,
        runs.c.kind,
        runs.c.status,
        sa.func.count(),
        sa.func.count(runs.c.started_at),
    ).group_by(runs.c.tenant_id, runs.c.kind, runs.c.status)
    rows = conn.execute(query).all()
    per_tenant: dict[str, int] = defaultdict(int)
    for tenant, _kind, _status, n, _started in rows:
        per_tenant[tenant] += n
    # The busiest tenants keep their name, the rest share one label: a bounded number of series however
    # many tenants there are. Ties go by name, so every replica picks the same ones.
    ranked = sorted(per_tenant, key=lambda t: (-per_tenant[t], t))
    named = set(ranked[:top_tenants])
    by_status: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    started: dict[tuple[str, str], int] = defaultdict(int)
    for tenant, kind, status, n, began in rows:
        label = (tenant if tenant in named else OTHER_TENANTS, kind)
        by_status[label][status] += n
        started[label] += began
    return {label: RunCounts(dict(counts), started[label]) for label, counts in by_status.items()}


def _histogram_columns(
    seconds: sa.ColumnElement[Any], bounds: Sequence[float]
) -> list[sa.ColumnElement[Any]]:
    observed = seconds.is_not(None)
    columns: list[sa.ColumnElement[Any]] = [sa.func.count().filter(seconds <= b) for b in bounds]
    columns.append(sa.func.count().filter(observed))
    columns.append(sa.func.coalesce(sa.func.sum(seconds), 0.0))
    return columns


def _histograms(conn: Connection) -> tuple[dict[str, Histogram], dict[str, Histogram]]:
    wait = sa.extract("epoch", runs.c.started_at - runs.c.created_at)
    took = sa.extract("epoch", runs.c.finished_at - runs.c.started_at)
    query = sa.select(
        runs.c.kind,
        *_histogram_columns(wait, QUEUE_WAIT_BUCKETS),
        *_histogram_columns(took, DURATION_BUCKETS),
    ).group_by(runs.c.kind)
    queue_wait, duration = {}, {}
    split = len(QUEUE_WAIT_BUCKETS) + 2
    for kind, *values in conn.execute(query):
        queue_wait[kind] = _histogram(QUEUE_WAIT_BUCKETS, values[:split])
        duration[kind] = _histogram(DURATION_BUCKETS, values[split:])
    return queue_wait, duration


def _histogram(bounds: tuple[float, ...], values: Sequence[object]) -> Histogram:
    *buckets, count, total = values
    counts = tuple(int(str(n)) for n in buckets)
    return Histogram(bounds, (*counts, int(str(count))), int(str(count)), float(str(total)))


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
    queue_wait, duration = _histograms(conn)
    head, lost, due, scheduled, oldest_due = _log_and_outbox(conn)
    return Snapshot(
        runs=counts,
        queue_wait=queue_wait,
        duration=duration,
        log_head=int(head),
        attempts_lost=int(lost),
        outbox_due=int(due),
        outbox_scheduled=int(scheduled),
        outbox_oldest_due_seconds=max(0.0, float(oldest_due)),
        projections=_projection_lags(conn, int(head), projections),
    )
