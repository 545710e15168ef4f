"""Read queries for the public surfaces (taxonomy, task runs, list jobs), all on the `runs` read model.

They sit beside readmodel.py (the canonical API's queries) and follow its rule: every query takes the
tenant, so another tenant's run does not exist. Filters on creation attributes use JSONB containment
(`@>`), which the GIN index on `runs.attributes` serves; ordering is always newest first on
(created_at, id), the order of the tenant/kind indexes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.store.schema import outbox, runs

NEWEST_FIRST = (runs.c.created_at.desc(), runs.c.id.desc())


def taxonomy_runs(
    conn: Connection,
    tenant_id: str,
    kind: str,
    *,
    field_id: str | None,
    source_type: str | None,
    source_id: str | None,
    limit: int,
) -> list[sa.Row[Any]]:
    """`source_id` is tri-state: None is no filter, "" the "no source" bucket, a value that source."""
    query = sa.select(runs).where(runs.c.tenant_id == tenant_id, runs.c.kind == kind)
    wanted = {"field_id": field_id, "source_type": source_type, "source_id": source_id}
    contained = {name: value for name, value in wanted.items() if value}
    if contained:
        query = query.where(runs.c.attributes.contains(contained))
    if source_id == "":
        # A run recorded without a source belongs to the "" bucket too, so match on the coalesced text.
        query = query.where(sa.func.coalesce(runs.c.attributes["source_id"].astext, "") == "")
    return list(conn.execute(query.order_by(*NEWEST_FIRST).limit(limit)))


def task_runs(
    conn: Connection, tenant_id: str, kind: str, offset: int, limit: int
) -> tuple[int, list[sa.Row[Any]]]:
    """The total and one offset page, each row with `dispatched`: has the relay published its dispatch?

    Run both statements in one REPEATABLE READ transaction so the total and the page agree.
    """
    matching = (runs.c.tenant_id == tenant_id, runs.c.kind == kind)
    total = conn.execute(sa.select(sa.func.count()).select_from(runs).where(*matching)).scalar_one()
    dispatched = (
        sa.exists().where(outbox.c.run_id == runs.c.id, outbox.c.sent_at.is_not(None)).label("dispatched")
    )
    query = sa.select(runs, dispatched).where(*matching).order_by(*NEWEST_FIRST).offset(offset).limit(limit)
    return int(total), list(conn.execute(query))


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
    conn: Connection,
    tenant_id: str,
    filters: JobFilters,
    limit: int,
    after: tuple[datetime, UUID] | None = None,
) -> list[sa.Row[Any]]:
    """Newest first, keyset-paginated on (created_at, id): runs created meanwhile never shift a page."""
    query = sa.select(runs).where(
        runs.c.tenant_id == tenant_id,
        runs.c.kind.in_(filters.kinds),
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
    if after is not None:
        query = query.where(sa.tuple_(runs.c.created_at, runs.c.id) < sa.tuple_(*after))
    return list(conn.execute(query.order_by(*NEWEST_FIRST).limit(limit)))
