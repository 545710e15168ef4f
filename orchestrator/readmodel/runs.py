"""Queries on the `runs` read model, as typed records. Every query takes the tenant: a run of another
tenant does not exist.

Read-your-writes without waiting on the projector: a write route answers from the stream its write
returned (`as_written`), and a get by id of a run the read model does not hold yet folds the run's stream,
both with the projection's own fold. The answer is what the projector will show once it gets there, so a
client never sees 404 for a run it was just told about, even while the projector is stopped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.projections import counts as run_counts
from orchestrator.projections import runs as runs_projection
from orchestrator.projections.runs import RunRecord
from orchestrator.readmodel.paging import Position, keyset_page
from orchestrator.store.events import RecordedEvent, read_run_stream
from orchestrator.store.schema import runs


@dataclass(frozen=True)
class RunFilters:
    """Equalities and ranges on run columns; `attributes` are matched by JSONB containment (`@>`), which the
    GIN index on `runs.attributes` serves. Empty fields are no filter."""

    status: str | None = None
    kind: str | None = None
    kinds: tuple[str, ...] = ()
    parent_id: UUID | None = None
    root_only: bool = False
    created_after: datetime | None = None
    created_before: datetime | None = None
    attributes: Mapping[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """What a cursor is bound to: the same filters, as plain strings."""
        return {k: (str(v) if v is not None else None) for k, v in self.__dict__.items()}


def filtered(tenant_id: str, filters: RunFilters) -> sa.Select[Any]:
    """The tenant's runs matching `filters`: the one place list filters become SQL."""
    query = sa.select(runs).where(runs.c.tenant_id == tenant_id)
    if filters.status:
        query = query.where(runs.c.status == filters.status)
    if filters.kind:
        query = query.where(runs.c.kind == filters.kind)
    if filters.kinds:
        query = query.where(runs.c.kind.in_(filters.kinds))
    if filters.parent_id:
        query = query.where(runs.c.parent_id == filters.parent_id)
    if filters.root_only:
        query = query.where(runs.c.parent_id.is_(None))
    if filters.created_after:
        query = query.where(runs.c.created_at > filters.created_after)
    if filters.created_before:
        query = query.where(runs.c.created_at < filters.created_before)
    if filters.attributes:
        query = query.where(runs.c.attributes.contains(dict(filters.attributes)))
    return query


def count_runs(conn: Connection, tenant_id: str, filters: RunFilters) -> int:
    """How many runs match: from the projection's counters when the filters are only kind, status and
    top level (a sum over a few rows at any scale), else a COUNT(*) of the filtered query."""
    countable = RunFilters(
        status=filters.status, kind=filters.kind, kinds=filters.kinds, root_only=filters.root_only
    )
    if replace(filters, attributes=filters.attributes or None) == countable:  # {} is no filter either
        kinds = (filters.kind,) if filters.kind else filters.kinds
        return run_counts.totals(
            conn, tenant_id, kinds=kinds, status=filters.status, top_level_only=filters.root_only
        )
    total = conn.execute(sa.select(sa.func.count()).select_from(filtered(tenant_id, filters).subquery()))
    return int(total.scalar_one())


def records(conn: Connection, query: sa.Select[Any]) -> list[RunRecord]:
    return [RunRecord.from_row(row._mapping) for row in conn.execute(query)]


def list_runs(
    conn: Connection, tenant_id: str, filters: RunFilters, limit: int, after: Position | None = None
) -> list[RunRecord]:
    """Newest first, keyset-paginated on (created_at, id) so inserts never shift a page."""
    return records(conn, keyset_page(filtered(tenant_id, filters), limit, after))


def get_run(conn: Connection, tenant_id: str, run_id: UUID) -> RunRecord | None:
    """The run as the read model holds it, or, when it holds none yet, as the run's stream folds."""
    row = conn.execute(sa.select(runs).where(runs.c.tenant_id == tenant_id, runs.c.id == run_id)).first()
    if row is not None:
        return RunRecord.from_row(row._mapping)
    return runs_projection.fold(read_run_stream(conn, run_id, tenant_id=tenant_id))


def as_written(stream: Sequence[RecordedEvent]) -> RunRecord:
    """The run as a write left it, from the stream the write returned: what a write route answers."""
    run = runs_projection.fold(stream)
    assert run is not None, "a written stream starts with RunCreated"
    return run


def run_events(conn: Connection, tenant_id: str, run_id: UUID) -> list[RecordedEvent]:
    return read_run_stream(conn, run_id, tenant_id=tenant_id)


LIVE_STATUSES = ("pending", "running")


def cancelable(conn: Connection, tenant_id: str, filters: RunFilters, limit: int) -> tuple[list[UUID], int]:
    """The newest `limit` live runs matching `filters` that no cancel has reached yet, and how many such
    runs match in all. Runs already asked to cancel are left out, so repeated bulk cancels make progress."""
    query = filtered(tenant_id, filters).where(
        runs.c.status.in_(LIVE_STATUSES), runs.c.cancel_requested.is_(False)
    )
    ids = [row.id for row in conn.execute(keyset_page(query.with_only_columns(runs.c.id), limit))]
    if len(ids) < limit:
        return ids, len(ids)
    total = conn.execute(
        sa.select(sa.func.count()).select_from(query.with_only_columns(runs.c.id).subquery())
    )
    return ids, int(total.scalar_one())


def retries_of(conn: Connection, tenant_id: str, run_id: UUID) -> list[UUID]:
    """The runs that retry `run_id`, oldest first (served by the partial index on `retry_of`)."""
    query = (
        sa.select(runs.c.id)
        .where(runs.c.tenant_id == tenant_id, runs.c.retry_of == run_id)
        .order_by(runs.c.created_at, runs.c.id)
    )
    return [row.id for row in conn.execute(query)]
