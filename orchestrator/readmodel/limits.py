"""A tenant's running limits as the API and the CLI show them: its own, the default, and what holds a slot."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from orchestrator.domain.dispatch import ALL_KINDS
from orchestrator.store import limits, slots
from schemas.limits import LimitsView


def limits_view(conn: Connection, tenant_id: str, default_max_running: int | None) -> LimitsView:
    rows = limits.of_tenants(conn, [tenant_id])
    own = rows.get((tenant_id, ALL_KINDS))
    effective = own if own is not None else default_max_running
    running = slots.running(conn, [tenant_id])
    return LimitsView(
        tenant_id=tenant_id,
        max_running=own,
        default_max_running=default_max_running or None,
        effective_max_running=effective or None,
        per_kind={kind: value for (_, kind), value in sorted(rows.items()) if kind != ALL_KINDS},
        running={kind or "unknown": count for (_, kind), count in sorted(running.items())},
    )
