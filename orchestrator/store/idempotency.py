"""Idempotency keys: the first request with a key names the run; a retry finds it, a different body under
the same key is refused. The row commits in the submission's own transaction, so a key never names a run
that was not created."""

from __future__ import annotations

from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from orchestrator.store.schema import idempotency_keys


class KeyReused(Exception):
    """The key was already used with a different request."""


def claim(conn: Connection, tenant_id: str, key: str, request_hash: str, run_id: UUID) -> UUID | None:
    """Record `key` for `run_id`, or return the run an earlier request with it created. A concurrent
    holder of the same key makes this wait (the primary key's lock) until it commits or rolls back."""
    inserted = conn.execute(
        insert(idempotency_keys)
        .values(tenant_id=tenant_id, key=key, request_hash=request_hash, run_id=run_id)
        .on_conflict_do_nothing()
        .returning(idempotency_keys.c.run_id)
    ).first()
    if inserted is not None:
        return None
    row = conn.execute(
        sa.select(idempotency_keys.c.run_id, idempotency_keys.c.request_hash).where(
            idempotency_keys.c.tenant_id == tenant_id, idempotency_keys.c.key == key
        )
    ).one()
    if row.request_hash != request_hash:
        raise KeyReused(key)
    return UUID(str(row.run_id))
