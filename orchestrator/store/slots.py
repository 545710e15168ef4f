"""Dispatch slots: which runs are dispatched and not finished, counted against the tenants' limits.

The relay takes a slot in the transaction that publishes the run's message; the write path gives it back
in the transaction that ends the attempt or the run. The relay publishes before it commits, so a fast job
can end while the relay's slot row is still uncommitted and invisible: `release` first waits on the run's
outbox rows, which the relay holds locked until its commit, and only then deletes, in a new statement
that sees the committed row.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from orchestrator.store.outbox import OUTBOX_CHANNEL
from orchestrator.store.schema import dispatch_slots, outbox


def hold(conn: Connection, runs: Sequence[tuple[UUID, str, str, str]]) -> None:
    """Take a slot for each (run_id, tenant_id, kind, queue); a run that holds one already keeps it."""
    if runs:
        rows = [
            {"run_id": run_id, "tenant_id": tenant, "kind": kind, "queue": queue}
            for run_id, tenant, kind, queue in runs
        ]
        conn.execute(insert(dispatch_slots).on_conflict_do_nothing(index_elements=["run_id"]), rows)


# Deletes the run's slot and, when its tenant or its queue has due rows waiting (maybe for this very slot),
# wakes the relay at commit on the outbox channel; a free slot nobody waits for wakes nobody.
_RELEASE = sa.text(
    f"""
    WITH freed AS (DELETE FROM dispatch_slots WHERE run_id = :run_id RETURNING tenant_id, queue)
    SELECT pg_notify('{OUTBOX_CHANNEL}', '') FROM freed
    WHERE EXISTS (
        SELECT 1 FROM outbox o
        WHERE (o.tenant_id = freed.tenant_id OR o.queue = freed.queue)
          AND o.sent_at IS NULL AND o.not_before <= now()
    )
    """
)


_WAIT_FOR_RELAY = (
    sa.select(outbox.c.id).where(outbox.c.run_id == sa.bindparam("run_id")).with_for_update(read=True)
)


def release(conn: Connection, run_id: UUID) -> None:
    """Give the run's slot back (if it holds one)."""
    conn.execute(_WAIT_FOR_RELAY, {"run_id": run_id})
    conn.execute(_RELEASE, {"run_id": run_id})


def in_flight(conn: Connection, queues: Sequence[str]) -> dict[str, int]:
    """Held slots per queue of these queues: their runs published and not finished."""
    query = (
        sa.select(dispatch_slots.c.queue, sa.func.count())
        .where(dispatch_slots.c.queue.in_(queues))
        .group_by(dispatch_slots.c.queue)
    )
    return {queue: int(count) for queue, count in conn.execute(query)}


def running(conn: Connection, tenants: Sequence[str]) -> dict[tuple[str, str], int]:
    """Held slots per (tenant, kind) of these tenants."""
    query = (
        sa.select(dispatch_slots.c.tenant_id, dispatch_slots.c.kind, sa.func.count())
        .where(dispatch_slots.c.tenant_id.in_(tenants))
        .group_by(dispatch_slots.c.tenant_id, dispatch_slots.c.kind)
    )
    return {(tenant, kind): int(count) for tenant, kind, count in conn.execute(query)}
