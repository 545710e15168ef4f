"""Queries the data-products surface needs beyond `readmodel.runs`: offset pages with totals, whole run
trees, and a run with its current steps.

Like `readmodel.runs`, every query takes the tenant, and a run the projector has not reached yet is
folded from its stream rather than missing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Protocol, TypeVar
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.projections import runs as runs_projection
from orchestrator.projections import steps as steps_projection
from orchestrator.projections.runs import RunRecord
from orchestrator.projections.steps import StepRecord
from orchestrator.readmodel.paging import NEWEST_FIRST
from orchestrator.readmodel.runs import RunFilters, count_runs, filtered
from orchestrator.store.events import RecordedEvent, read_run_stream
from orchestrator.store.schema import projection_checkpoints, run_steps, runs
from schemas.runs import RunStatus


@dataclass(frozen=True, slots=True)
class RunOutline:
    """What a run's summary shows: its place in its tree, its status and times, the creation attributes
    asked for (the others are not read) and its result's `outcome`. Lists and trees read these few
    columns instead of whole runs: decoding every run's params, result and counts was half of the time a
    tree of 1,000 runs took."""

    id: UUID
    parent_id: UUID | None
    root_id: UUID
    depth: int
    status: RunStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attributes: Mapping[str, Any]  # the asked-for keys only; a key not recorded is missing or None
    outcome: Any

    @classmethod
    def of(cls, run: RunRecord, attribute_keys: Sequence[str]) -> RunOutline:
        return cls(
            id=run.id,
            parent_id=run.parent_id,
            root_id=run.root_id,
            depth=run.depth,
            status=run.status,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            attributes={key: run.attributes[key] for key in attribute_keys if key in run.attributes},
            outcome=run.result.get("outcome") if run.result is not None else None,
        )


@cache
def _outline_columns(attribute_keys: tuple[str, ...]) -> list[sa.ColumnElement[Any]]:
    """`RunOutline`'s fields, in its order; built once per set of keys (a surface asks for one), not per
    request."""
    asked = [part for key in attribute_keys for part in (sa.literal(key), runs.c.attributes[key])]
    return [
        runs.c.id,
        runs.c.parent_id,
        runs.c.root_id,
        runs.c.depth,
        runs.c.status,
        runs.c.created_at,
        runs.c.started_at,
        runs.c.finished_at,
        sa.func.jsonb_strip_nulls(sa.func.jsonb_build_object(*asked)).label("attributes"),
        runs.c.result["outcome"].label("outcome"),
    ]


def _outlines(conn: Connection, query: sa.Select[Any], attribute_keys: tuple[str, ...]) -> list[RunOutline]:
    """The runs `query` selects (a `select(runs)` with its conditions and order) as outlines."""
    rows = conn.execute(query.with_only_columns(*_outline_columns(attribute_keys))).all()
    # Unpacked in the columns' order: a row's mapping costs more than the rest of its outline.
    return [
        RunOutline(
            run_id, parent_id, root_id, depth, RunStatus(status), created, started, finished, attrs, outcome
        )
        for run_id, parent_id, root_id, depth, status, created, started, finished, attrs, outcome in rows
    ]


def page_runs(
    conn: Connection,
    tenant_id: str,
    filters: RunFilters,
    limit: int,
    offset: int,
    attribute_keys: tuple[str, ...] = (),
) -> tuple[list[RunOutline], int]:
    """One page, newest first, and the number of runs matching the filters.

    Both run in the caller's connection; under READ COMMITTED a run committed between them can make the
    total and the page disagree by that run, which offset paging cannot avoid anyway.
    """
    query = filtered(tenant_id, filters)
    total = count_runs(conn, tenant_id, filters)
    page = query.order_by(*NEWEST_FIRST).limit(limit).offset(offset)
    return _outlines(conn, page, attribute_keys), total


def run_tree(
    conn: Connection, tenant_id: str, run_id: UUID, attribute_keys: tuple[str, ...] = ()
) -> list[RunOutline] | None:
    """Every run sharing `run_id`'s root, root first, depth-first; None when the run is not the tenant's."""
    found = _outlines(
        conn, sa.select(runs).where(runs.c.tenant_id == tenant_id, runs.c.id == run_id), attribute_keys
    )
    if found:
        member = found[0]
    else:
        folded = _folded(conn, tenant_id, run_id)
        if folded is None:
            return None
        member = RunOutline.of(folded, attribute_keys)
    members = _outlines(
        conn,
        sa.select(runs)
        .where(runs.c.tenant_id == tenant_id, runs.c.root_id == member.root_id)
        .order_by(runs.c.created_at, runs.c.id),
        attribute_keys,
    )
    if all(m.id != member.id for m in members):
        members = sorted([*members, member], key=lambda m: (m.created_at, m.id))
    return depth_first(members, member.root_id)


def _folded(conn: Connection, tenant_id: str, run_id: UUID) -> RunRecord | None:
    return runs_projection.fold(read_run_stream(conn, run_id, tenant_id=tenant_id))


class _TreeMember(Protocol):
    @property
    def id(self) -> UUID: ...
    @property
    def parent_id(self) -> UUID | None: ...


Member = TypeVar("Member", bound=_TreeMember)


def depth_first(members: list[Member], root_id: UUID) -> list[Member]:
    """Pre-order walk; `members` must already be in sibling order (created_at, id).

    Iterative, so a deep chain of child runs cannot exhaust the recursion limit. A run whose parent is
    missing from the tree (not yet projected) is still listed, after the reachable ones.
    """
    by_id = {m.id: m for m in members}
    children: dict[UUID, list[Member]] = defaultdict(list)
    for m in members:
        if m.parent_id is not None:
            children[m.parent_id].append(m)
    ordered: list[Member] = []
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
