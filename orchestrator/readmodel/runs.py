"""Queries on the read models. Every query takes the tenant: a run of another tenant does not exist."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.store.schema import events, runs


@dataclass(frozen=True)
class RunFilters:
    status: str | None = None
    kind: str | None = None
    parent_id: UUID | None = None
    root_only: bool = False
    created_after: datetime | None = None
    created_before: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (str(v) if v is not None else None) for k, v in self.__dict__.items()}


def _filtered(tenant_id: str, filters: RunFilters) -> sa.Select[Any]:
    query = sa.select(runs).where(runs.c.tenant_id == tenant_id)
    if filters.status:
        query = query.where(runs.c.status == filters.status)
    if filters.kind:
        query = query.where(runs.c.kind == filters.kind)
    if filters.parent_id:
        query = query.where(runs.c.parent_id == filters.parent_id)
    if filters.root_only:
        query = query.where(runs.c.parent_id.is_(None))
    if filters.created_after:
        query = query.where(runs.c.created_at > filters.created_after)
    if filters.created_before:
        query = query.where(runs.c.created_at < filters.created_before)
    return query


def list_runs(
    conn: Connection,
    tenant_id: str,
    filters: RunFilters,
    limit: int,
    after: tuple[datetime, UUID] | None = None,
) -> list[sa.Row[Any]]:
    """Newest first, keyset-paginated on (created_at, id) so inserts never shift a page."""
    query = _filtered(tenant_id, filters)
    if after is not None:
        query = query.where(sa.tuple_(runs.c.created_at, runs.c.id) < sa.tuple_(*after))
    query = query.order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(limit)
    return list(conn.execute(query))


def get_run(conn: Connection, tenant_id: str, run_id: UUID) -> sa.Row[Any] | None:
    return conn.execute(sa.select(runs).where(runs.c.tenant_id == tenant_id, runs.c.id == run_id)).first()


def run_events(conn: Connection, tenant_id: str, run_id: UUID) -> list[sa.Row[Any]]:
    query = (
        sa.select(events.c.position, events.c.version, events.c.type, events.c.data, events.c.recorded_at)
        .where(events.c.tenant_id == tenant_id, events.c.stream_id == run_id)
        .order_by(events.c.version)
    )
    return list(conn.execute(query))
