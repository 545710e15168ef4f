"""Queries the taxonomy, task-runs and list-jobs surfaces need beyond `readmodel.runs`, on the same model.

Every query takes the tenant; filters on creation attributes use JSONB containment (`@>`), which the GIN
index on `runs.attributes` serves; ordering is always newest first (`paging.NEWEST_FIRST`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.projections.runs import RunRecord
from orchestrator.readmodel.paging import NEWEST_FIRST, Position, keyset_page
from orchestrator.readmodel.runs import RunFilters, count_runs, filtered, records
from orchestrator.store.schema import outbox, runs


def taxonomy_runs(
    conn: Connection,
    tenant_id: str,
    kind: str,
    *,
    field_id: str | None,
    source_type: str | None,
    source_id: str | None,
    limit: int,
) -> list[RunRecord]:
    """`source_id` is tri-state: None is no filter, "" the "no source" bucket, a value that source."""
    wanted = {"field_id": field_id, "source_type": source_type, "source_id": source_id}
    attributes = {name: value for name, value in wanted.items() if value}
    query = filtered(tenant_id, RunFilters(kind=kind, attributes=attributes))
    if source_id == "":
        # A run recorded without a source belongs to the "" bucket too, so match on the coalesced text.
        query = query.where(sa.func.coalesce(runs.c.attributes["source_id"].astext, "") == "")
    return records(conn, keyset_page(query, limit))


@dataclass(frozen=True)
class TaskRunRow:
    run: RunRecord
    dispatched: bool  # has the relay published the run's dispatch?


def task_runs(
    conn: Connection, tenant_id: str, kind: str, offset: int, limit: int
) -> tuple[int, list[TaskRunRow]]:
    """The total and one offset page. Run both in one REPEATABLE READ transaction so they agree."""
    query = filtered(tenant_id, RunFilters(kind=kind))
    total = count_runs(conn, tenant_id, RunFilters(kind=kind))
    dispatched = (
        sa.exists().where(outbox.c.run_id == runs.c.id, outbox.c.sent_at.is_not(None)).label("dispatched")
    )
    page = query.add_columns(dispatched).order_by(*NEWEST_FIRST).offset(offset).limit(limit)
    rows = [TaskRunRow(RunRecord.from_row(r._mapping), bool(r.dispatched)) for r in conn.execute(page)]
    return int(total), rows


@dataclass(frozen=True)
class JobFilters:
    """List-jobs filters in read-model terms. `states` pairs a run status with whether a retry must be
    scheduled (True), must not be (False), or does not matter (None)."""

    kinds: tuple[str, ...]
    states: tuple[tuple[str, bool | None], ...]
    created_since: datetime
    job_id: UUID | None = None
    corpus_ids: tuple[int, ...] = ()


def _state_clause(status: str, retrying: bool | None) -> sa.ColumnElement[bool]:
    clause = runs.c.status == status
    if retrying is None:
        return clause
    return sa.and_(clause, runs.c.retry_at.is_not(None) if retrying else runs.c.retry_at.is_(None))


def list_jobs(
    conn: Connection, tenant_id: str, filters: JobFilters, limit: int, after: Position | None = None
) -> list[RunRecord]:
    query = filtered(tenant_id, RunFilters(kinds=filters.kinds)).where(
        runs.c.created_at >= filters.created_since,
        sa.or_(sa.false(), *(_state_clause(status, retrying) for status, retrying in filters.states)),
    )
    if filters.job_id is not None:
        query = query.where(runs.c.id == filters.job_id)
    if filters.corpus_ids:
        # Any overlap: one containment test per corpus keeps each test on the GIN index.
        query = query.where(
            sa.or_(*(runs.c.attributes.contains({"corpus_ids": [c]}) for c in filters.corpus_ids))
        )
    return records(conn, keyset_page(query, limit, after))
