"""Tenants' running limits (tenant_limits): kind '' is the tenant's own total, other kinds limit that kind."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.domain.dispatch import ALL_KINDS
from orchestrator.store.schema import tenant_limits


def of_tenants(conn: Connection, tenants: Sequence[str]) -> dict[tuple[str, str], int]:
    """Every limit row of these tenants, as (tenant, kind) -> max running."""
    query = sa.select(tenant_limits.c.tenant_id, tenant_limits.c.kind, tenant_limits.c.max_running).where(
        tenant_limits.c.tenant_id.in_(tenants)
    )
    return {(tenant, kind): int(value) for tenant, kind, value in conn.execute(query)}


def replace(conn: Connection, tenant_id: str, total: int | None, per_kind: Mapping[str, int]) -> None:
    """Set the tenant's limits to exactly these: `total` None means the default applies."""
    conn.execute(tenant_limits.delete().where(tenant_limits.c.tenant_id == tenant_id))
    rows = [{"tenant_id": tenant_id, "kind": kind, "max_running": value} for kind, value in per_kind.items()]
    if total is not None:
        rows.append({"tenant_id": tenant_id, "kind": ALL_KINDS, "max_running": total})
    if rows:
        conn.execute(tenant_limits.insert(), rows)
