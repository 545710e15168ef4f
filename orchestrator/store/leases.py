"""Run leases: a worker's claim on a running attempt, renewed in place (not logged)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from orchestrator.store.schema import run_leases


@dataclass(frozen=True)
class ExpiredLease:
    run_id: UUID
    tenant_id: str
    attempt: int


def _expiry(seconds: sa.ColumnElement[object] | float) -> sa.ColumnElement[object]:
    return sa.func.clock_timestamp() + sa.func.make_interval(0, 0, 0, 0, 0, 0, seconds)


# Built once, as the hot path's statements in store.events are (see _INSERT there for why).
_NEW_LEASE = insert(run_leases).values(expires_at=_expiry(sa.bindparam("seconds", type_=sa.Float)))
_GRANT = _NEW_LEASE.on_conflict_do_update(
    index_elements=[run_leases.c.run_id],
    set_={
        "attempt": _NEW_LEASE.excluded.attempt,
        "worker": _NEW_LEASE.excluded.worker,
        "expires_at": _NEW_LEASE.excluded.expires_at,
    },
)
_RELEASE = run_leases.delete().where(run_leases.c.run_id == sa.bindparam("run_id"))
_RELEASE_ATTEMPT = _RELEASE.where(run_leases.c.attempt == sa.bindparam("attempt"))


def grant(conn: Connection, run_id: UUID, tenant_id: str, attempt: int, worker: str, seconds: float) -> None:
    values = {
        "run_id": run_id,
        "tenant_id": tenant_id,
        "attempt": attempt,
        "worker": worker,
        "seconds": seconds,
    }
    conn.execute(_GRANT, values)


def renew(conn: Connection, run_id: UUID, attempt: int, seconds: float) -> bool:
    """Extend the lease; False when the attempt no longer holds it (it was lost or ended)."""
    result = conn.execute(
        run_leases.update()
        .where(run_leases.c.run_id == run_id, run_leases.c.attempt == attempt)
        .values(expires_at=_expiry(seconds))
    )
    return result.rowcount == 1


def release(conn: Connection, run_id: UUID, attempt: int | None = None) -> None:
    if attempt is None:
        conn.execute(_RELEASE, {"run_id": run_id})
    else:
        conn.execute(_RELEASE_ATTEMPT, {"run_id": run_id, "attempt": attempt})


def expired(conn: Connection, limit: int = 100) -> list[ExpiredLease]:
    query = (
        sa.select(run_leases.c.run_id, run_leases.c.tenant_id, run_leases.c.attempt)
        .where(run_leases.c.expires_at < sa.func.clock_timestamp())
        .order_by(run_leases.c.expires_at)
        .limit(limit)
    )
    return [ExpiredLease(*row) for row in conn.execute(query)]
