"""Retention: finished run trees older than their tenant's period are deleted, events and read-model rows
together, a bounded batch per transaction, a whole tree at a time (never a child without its root or the
reverse), leaving every read model equal to a rebuild from the log that remains.

The log is append-only for every live run; deleting a finished run tree's streams is the one exception.
It keeps the projectors' checkpoints valid because a batch first locks every projection's checkpoint row
(the lock each projector batch and each rebuild takes, in name order, so no cycle) and then deletes only
runs whose whole stream lies at or below the lowest checkpoint: every projection has applied each of those
events already and never reads below its checkpoint again, and positions are an identity that is never
reused, so nothing is re-read and nothing is skipped. A finished run takes no new event (the lifecycle
refuses them) and a finished or canceling run no new child (store.children), so a tree that is finished
at or below the checkpoint stays as it is. The tree is read from the read model and checked against the
log (RunCreated's parent links): a tree the two disagree on is left for a later pass.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.engine import Connection, Engine

from orchestrator.projections import counts, run_metrics
from orchestrator.projections.runner import PROJECTIONS, retention_may_run
from orchestrator.projections.runs import RunRecord
from orchestrator.settings import Settings
from orchestrator.store.schema import (
    dispatch_slots,
    events,
    idempotency_keys,
    outbox,
    projection_checkpoints,
    run_counts,
    run_leases,
    run_steps,
    runs,
    taxonomy_assignments,
    taxonomy_nodes,
)

log = structlog.get_logger(__name__)

# Rows keyed by run id that go with the run: the read models, and the write side's bookkeeping.
_RUN_TABLES: tuple[tuple[sa.Table, str], ...] = (
    (run_steps, "run_id"),
    (taxonomy_nodes, "run_id"),
    (taxonomy_assignments, "run_id"),
    (outbox, "run_id"),
    (run_leases, "run_id"),
    (idempotency_keys, "run_id"),
    # A slot a crash left behind is pruned by its run's terminal event, which goes with the run here.
    (dispatch_slots, "run_id"),
)

# The tree of each root as the log records it: RunCreated's parent links, over migration 0011's index.
_LOG_TREES = sa.text(
    """
    WITH RECURSIVE tree(root, id) AS (
        SELECT r, r FROM unnest(CAST(:roots AS uuid[])) AS r
      UNION
        SELECT tree.root, e.stream_id FROM events e JOIN tree
          ON e.type = 'RunCreated' AND e.data ->> 'parent_id' = tree.id::text AND e.tenant_id = :tenant
    )
    SELECT root, id FROM tree
    """
)


@dataclass
class RetentionReport:
    trees: int = 0
    runs: int = 0
    events: int = 0
    batches: int = 0
    tenants: list[str] = field(default_factory=list)

    def add(self, other: RetentionReport) -> None:
        self.trees, self.runs = self.trees + other.trees, self.runs + other.runs
        self.events, self.batches = self.events + other.events, self.batches + other.batches


def _ids(values: Iterable[UUID]) -> Any:
    return sa.cast(list(values), ARRAY(PG_UUID(as_uuid=True)))


def _lowest_checkpoint(conn: Connection) -> int:
    """Lock every projection's checkpoint row (name order) and return the lowest position; 0 if one is
    missing (that projection applied nothing yet, so nothing may go)."""
    names = sorted(p.name for p in PROJECTIONS)
    query = (
        sa.select(projection_checkpoints.c.name, projection_checkpoints.c.position)
        .where(projection_checkpoints.c.name.in_(names))
        .order_by(projection_checkpoints.c.name)
        .with_for_update()
    )
    found = {row.name: int(row.position) for row in conn.execute(query)}
    return min(found.get(name, 0) for name in names)


def _candidates(
    conn: Connection, tenant_id: str, cutoff: datetime, after: tuple[datetime, UUID] | None, limit: int
) -> list[tuple[datetime, UUID]]:
    """Roots finished before the cutoff, oldest first, past `after` (runs_tenant_finished_roots_idx)."""
    query = sa.select(runs.c.finished_at, runs.c.id).where(
        runs.c.tenant_id == tenant_id,
        runs.c.parent_id.is_(None),
        runs.c.finished_at.is_not(None),
        runs.c.finished_at < cutoff,
    )
    if after is not None:
        query = query.where(sa.tuple_(runs.c.finished_at, runs.c.id) > sa.tuple_(*after))
    query = query.order_by(runs.c.finished_at, runs.c.id).limit(limit)
    return [(row.finished_at, row.id) for row in conn.execute(query)]


def _trees(conn: Connection, tenant_id: str, roots: Sequence[UUID]) -> dict[UUID, list[RunRecord]]:
    query = sa.select(runs).where(runs.c.tenant_id == tenant_id, runs.c.root_id == sa.func.any(_ids(roots)))
    trees: dict[UUID, list[RunRecord]] = {root: [] for root in roots}
    for row in conn.execute(query):
        trees[row.root_id].append(RunRecord.from_row(row._mapping))
    return trees


def _log_trees(conn: Connection, tenant_id: str, roots: Sequence[UUID]) -> dict[UUID, set[UUID]]:
    found: dict[UUID, set[UUID]] = {root: set() for root in roots}
    for row in conn.execute(_LOG_TREES, {"roots": [str(r) for r in roots], "tenant": tenant_id}):
        found[row.root].add(row.id)
    return found


def _deletable(tree: list[RunRecord], cutoff: datetime, checkpoint: int) -> bool:
    return bool(tree) and all(
        r.finished_at is not None and r.finished_at < cutoff and r.last_position <= checkpoint for r in tree
    )


def _delete(conn: Connection, gone: list[RunRecord]) -> int:
    ids = [r.id for r in gone]
    removed = conn.execute(events.delete().where(events.c.stream_id == sa.func.any(_ids(ids)))).rowcount
    for table, column in _RUN_TABLES:
        conn.execute(table.delete().where(table.c[column] == sa.func.any(_ids(ids))))
    conn.execute(runs.delete().where(runs.c.id == sa.func.any(_ids(ids))))
    # The runs projection's aggregates, as a rebuild without these runs would leave them.
    counts.remove(conn, gone)
    run_metrics.remove(conn, gone)
    return int(removed)


def _count_events(conn: Connection, ids: list[UUID]) -> int:
    query = sa.select(sa.func.count()).where(events.c.stream_id == sa.func.any(_ids(ids)))
    return int(conn.execute(query).scalar_one())


def _batch(
    engine: Engine,
    tenant_id: str,
    cutoff: datetime,
    after: tuple[datetime, UUID] | None,
    batch_runs: int,
    dry_run: bool,
) -> tuple[RetentionReport, tuple[datetime, UUID] | None]:
    """One transaction: up to `batch_runs` runs in whole trees (a bigger tree alone). Returns what it did
    and where the next batch starts (None when the tenant has no more candidates)."""
    with engine.begin() as conn:
        if not retention_may_run(conn):
            log.info("retention.waits_for_rebuild", tenant_id=tenant_id)
            return RetentionReport(), None  # the next pass deletes what this one would have
        checkpoint = _lowest_checkpoint(conn)
        candidates = _candidates(conn, tenant_id, cutoff, after, batch_runs)
        if not candidates:
            return RetentionReport(), None
        roots = [root for _, root in candidates]
        trees, logged = _trees(conn, tenant_id, roots), _log_trees(conn, tenant_id, roots)
        gone: list[RunRecord] = []
        report, resume = RetentionReport(batches=1), candidates[0]
        for candidate in candidates:
            tree = trees[candidate[1]]
            if gone and len(gone) + len(tree) > batch_runs:
                break  # this tree and the rest wait for the next batch
            resume = candidate
            if _deletable(tree, cutoff, checkpoint) and {r.id for r in tree} == logged[candidate[1]]:
                gone.extend(tree)
                report.trees += 1
        if gone:
            report.runs = len(gone)
            ids = [r.id for r in gone]
            report.events = _count_events(conn, ids) if dry_run else _delete(conn, gone)
    more = len(candidates) == batch_runs or resume != candidates[-1]
    return report, resume if more else None


def configured(settings: Settings) -> bool:
    """Whether any tenant has a retention period at all (otherwise a pass has nothing to look at)."""
    return settings.retention_days > 0 or any(days > 0 for days in settings.retention_tenant_days.values())


def tenants_with_runs(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(sa.select(run_counts.c.tenant_id).distinct())]


def apply_retention(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime | None = None,
    tenants: Sequence[str] | None = None,
    dry_run: bool = False,
) -> RetentionReport:
    """One retention pass over `tenants` (default: every tenant with runs), each by its own period."""
    now = now or datetime.now(UTC)
    total = RetentionReport()
    for tenant_id in tenants if tenants is not None else tenants_with_runs(engine):
        days = settings.retention_days_for(tenant_id)
        if days <= 0:
            continue
        cutoff, after = now - timedelta(days=days), None
        while True:
            report, after = _batch(engine, tenant_id, cutoff, after, settings.retention_batch_runs, dry_run)
            total.add(report)
            if report.runs:
                total.tenants.append(tenant_id)
                log.info("retention.batch", tenant_id=tenant_id, dry_run=dry_run, **_counts(report))
            if after is None:
                break
    total.tenants = sorted(set(total.tenants))
    return total


def run_retention(engine: Engine, settings: Settings, stop: threading.Event) -> None:
    """A pass at once, then one every `retention_interval_seconds`, until stopped. Safe beside another
    reconciler's: batches take the checkpoint locks, and a tree one deleted is no candidate for the other."""
    while not stop.is_set():
        try:
            swept = apply_retention(engine, settings)
            log.info("retention.pass", trees=swept.trees, runs=swept.runs, events=swept.events)
        except Exception as exc:  # the next interval tries again; one bad pass must not end the loop
            log.error("retention.pass_failed", error_type=type(exc).__name__)
        stop.wait(settings.retention_interval_seconds)


def _counts(report: RetentionReport) -> dict[str, int]:
    return {"trees": report.trees, "runs": report.runs, "events": report.events}
