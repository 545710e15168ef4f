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


def claim_many(conn: Connection, tenant_id: str, claims: dict[str, tuple[str, UUID]]) -> dict[str, UUID]:
    """Record each key for its run, in two statements: {key: (request_hash, run_id)} in, and out the keys
    that an earlier request already holds, with the run it created. A concurrent holder of one of the keys
    makes this wait (the primary key's lock) until it commits or rolls back. Raises KeyReused for a key
    held with another request. Rows are inserted in key order so that two batches cannot deadlock."""
    if not claims:
        return {}
    ordered = sorted(claims)
    inserted = conn.execute(
        insert(idempotency_keys)
        .values(
            [
                {"tenant_id": tenant_id, "key": k, "request_hash": claims[k][0], "run_id": claims[k][1]}
                for k in ordered
            ]
        )
        .on_conflict_do_nothing()
        .returning(idempotency_keys.c.key)
    )
    held = set(ordered) - {row.key for row in inserted}
    if not held:
        return {}
    rows = conn.execute(
        sa.select(idempotency_keys.c.key, idempotency_keys.c.run_id, idempotency_keys.c.request_hash).where(
            idempotency_keys.c.tenant_id == tenant_id, idempotency_keys.c.key.in_(sorted(held))
        )
    )
    existing: dict[str, UUID] = {}
    for row in rows:
        if row.request_hash != claims[row.key][0]:
            raise KeyReused(row.key)
        existing[row.key] = UUID(str(row.run_id))
    return existing
