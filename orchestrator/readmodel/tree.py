"""Queries the data-products surface needs beyond `readmodel.runs`: offset pages with totals, whole run
trees, and a run with its current steps.

Like `readmodel.runs`, every query takes the tenant, and a run the projector has not reached yet is
folded from its stream rather than missing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.projections import runs as runs_projection
from orchestrator.projections import steps as steps_projection
from orchestrator.projections.runs import RunRecord
from orchestrator.projections.steps import StepRecord
from orchestrator.readmodel.paging import NEWEST_FIRST
from orchestrator.readmodel.runs import RunFilters, count_runs, filtered, records
from orchestrator.store.events import RecordedEvent, read_run_stream
from orchestrator.store.schema import projection_checkpoints, run_steps, runs


def page_runs(
    conn: Connection, tenant_id: str, filters: RunFilters, limit: int, offset: int
) -> tuple[list[RunRecord], int]:
    """One page, newest first, and the number of runs matching the filters.

    Both run in the caller's connection; under READ COMMITTED a run committed between them can make the
    total and the page disagree by that run, which offset paging cannot avoid anyway.
    """
    query = filtered(tenant_id, filters)
    total = count_runs(conn, tenant_id, filters)
    return records(conn, query.order_by(*NEWEST_FIRST).limit(limit).offset(offset)), total


def run_tree(conn: Connection, tenant_id: str, run_id: UUID) -> list[RunRecord] | None:
    """Every run sharing `run_id`'s root, root first, depth-first; None when the run is not the tenant's."""
    run = conn.execute(sa.select(runs).where(runs.c.tenant_id == tenant_id, runs.c.id == run_id)).first()
    member = RunRecord.from_row(run._mapping) if run is not None else _folded(conn, tenant_id, run_id)
    if member is None:
        return None
    members = records(
        conn,
        sa.select(runs)
        .where(runs.c.tenant_id == tenant_id, runs.c.root_id == member.root_id)
        .order_by(runs.c.created_at, runs.c.id),
    )
    if all(m.id != member.id for m in members):
        members = sorted([*members, member], key=lambda m: (m.created_at, m.id))
    return depth_first(members, member.root_id)


def _folded(conn: Connection, tenant_id: str, run_id: UUID) -> RunRecord | None:
    return runs_projection.fold(read_run_stream(conn, run_id, tenant_id=tenant_id))


def depth_first(members: list[RunRecord], root_id: UUID) -> list[RunRecord]:
    """Pre-order walk; `members` must already be in sibling order (created_at, id).

    Iterative, so a deep chain of child runs cannot exhaust the recursion limit. A run whose parent is
    missing from the tree (not yet projected) is still listed, after the reachable ones.
    """
    by_id = {m.id: m for m in members}
    children: dict[UUID, list[RunRecord]] = defaultdict(list)
    for m in members:
        if m.parent_id is not None:
            children[m.parent_id].append(m)
    ordered: list[RunRecord] = []
    stack = [by_id[root_id]] if root_id in by_id else []
    while stack:
        m = stack.pop()
        ordered.append(m)
        stack.extend(reversed(children[m.id]))
    seen = {m.id for m in ordered}
    return ordered + [m for m in members if m.id not in seen]


def run_with_steps(
    conn: Connection, tenant_id: str, run_id: UUID
) -> tuple[RunRecord, list[StepRecord]] | None:
    """The run and its current steps (`current_steps`), in the order the job took them. From the read
    models when both hold the run, else from its stream."""
    row = conn.execute(sa.select(runs).where(runs.c.tenant_id == tenant_id, runs.c.id == run_id)).first()
    if row is not None and _steps_reached(conn, row.last_position):
        run = RunRecord.from_row(row._mapping)
        query = (
            sa.select(run_steps)
            .where(run_steps.c.tenant_id == tenant_id, run_steps.c.run_id == run_id)
            .order_by(run_steps.c.attempt, run_steps.c.sequence)
        )
        return run, current_steps([StepRecord.from_row(s._mapping) for s in conn.execute(query)], run.attempt)
    return with_steps(read_run_stream(conn, run_id, tenant_id=tenant_id))


def with_steps(stream: Sequence[RecordedEvent]) -> tuple[RunRecord, list[StepRecord]] | None:
    """A run and its current steps from its own stream (a write's answer, or a fallback)."""
    folded = runs_projection.fold(stream)
    if folded is None:
        return None
    return folded, current_steps(steps_projection.fold(stream), folded.attempt)


def current_steps(steps: Sequence[StepRecord], attempt: int) -> list[StepRecord]:
    """The latest attempt's steps, after the earlier attempts' steps it resumed past. An attempt that starts
    over redoes its steps from the first, so earlier attempts are history; one that resumes (a workflow after
    its wait on children, or after a crash) starts at its first unfinished step, and the steps before it,
    each from the last attempt that ran it, are still what the run did."""
    latest = sorted((s for s in steps if s.attempt == attempt), key=lambda s: s.sequence)
    first = latest[0].sequence if latest else None
    earlier: dict[int, StepRecord] = {}
    for step in sorted(steps, key=lambda s: (s.attempt, s.sequence)):
        if step.attempt < attempt and (first is None or step.sequence < first):
            earlier[step.sequence] = step
    return [earlier[n] for n in sorted(earlier)] + latest


def _steps_reached(conn: Connection, position: int) -> bool:
    reached = conn.execute(
        sa.select(projection_checkpoints.c.position).where(
            projection_checkpoints.c.name == steps_projection.NAME
        )
    ).scalar()
    return reached is not None and reached >= position
