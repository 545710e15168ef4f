"""The relay's claim: which due outbox rows it publishes next, fairly across tenants and within limits.

The SQL reads a few of each (tenant, kind)'s due rows in priority order (a lateral scan of
outbox_tenant_due_idx per group), so one tenant's long queue costs neither the claim nor the others much;
the choice itself is orchestrator.domain.dispatch, pure. Reading per kind, not per tenant, keeps a kind
at its limit from hiding a tenant's other kinds behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

from orchestrator.domain.dispatch import Candidate, choose, effective_limits, queue_room
from orchestrator.store import limits, slots
from orchestrator.store.outbox import OutboxMessage
from orchestrator.store.schema import outbox

# Relays take turns choosing (each until its commit): limits count the slots committed before the choice,
# so two relays choosing at once could each fill the same last slot.
CLAIM_LOCK_KEY = 0x6F7263685F646973

# Rows per (tenant, kind): about twice a fair share of the batch, at least 10, at most the batch. A group
# with more due rows than it got this time is read again in the next batch, which the relay takes at once.
_CANDIDATES = sa.text(
    """
    WITH RECURSIVE groups AS (
        -- The distinct (tenant, kind) of unsent rows by skipping along outbox_tenant_due_idx, one index
        -- probe per group: 10,000 queued rows of one tenant cost as little as one.
        (SELECT tenant_id, kind FROM outbox WHERE sent_at IS NULL ORDER BY tenant_id, kind LIMIT 1)
        UNION ALL
        SELECT n.tenant_id, n.kind FROM groups g CROSS JOIN LATERAL (
            SELECT o.tenant_id, o.kind FROM outbox o
            WHERE o.sent_at IS NULL AND (o.tenant_id, o.kind) > (g.tenant_id, g.kind)
            ORDER BY o.tenant_id, o.kind LIMIT 1
        ) n
    )
    SELECT c.id, c.run_id, c.tenant_id, c.attempt, c.queue, c.kind, c.priority, c.not_before, c.request_id,
           c.trace_context,
           EXISTS (SELECT 1 FROM dispatch_slots s WHERE s.run_id = c.run_id) AS holds_slot
    FROM groups g CROSS JOIN LATERAL (
        SELECT o.id, o.run_id, o.tenant_id, o.attempt, o.queue, o.kind, o.priority, o.not_before,
               o.request_id, o.trace_context
        FROM outbox o
        WHERE o.tenant_id = g.tenant_id AND o.kind = g.kind AND o.sent_at IS NULL AND o.not_before <= now()
        ORDER BY o.priority DESC, o.not_before, o.id
        LIMIT least(:batch, greatest(10, 2 * ceil(CAST(:batch AS float) / (SELECT count(*) FROM groups))))
              ::int
    ) c
    """
)


@dataclass(frozen=True)
class Claim:
    """The rows to publish, in publishing order, and how many due candidates a running limit or a queue's
    cap kept back this time (they wait for a slot to free; claiming again before one does finds them
    again)."""

    messages: list[OutboxMessage]
    held_back: int = 0


def claim_fair(
    conn: Connection,
    batch: int = 100,
    default_max_running: int | None = None,
    queue_max_in_flight: int | None = None,
) -> Claim:
    """Lock and return the next due rows to publish (see domain.dispatch.choose)."""
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(CLAIM_LOCK_KEY)))
    rows = conn.execute(_CANDIDATES, {"batch": batch}).all()
    if not rows:
        return Claim([])
    tenants = sorted({row.tenant_id for row in rows})
    in_force = effective_limits(tenants, limits.of_tenants(conn, tenants), default_max_running)
    # Held slots order the tenants' turns when there is a choice to make: with one tenant waiting and no
    # limit, they change nothing, so the common case skips counting them.
    running = slots.running(conn, tenants) if in_force.max_running or len(tenants) > 1 else {}
    queues = sorted({row.queue for row in rows})
    room = queue_room(
        slots.in_flight(conn, queues) if queue_max_in_flight else {}, queues, queue_max_in_flight
    )
    candidates = [
        Candidate(row.id, row.tenant_id, row.kind, row.priority, row.not_before, row.holds_slot, row.queue)
        for row in rows
    ]
    chosen = [c.id for c in choose(candidates, running, in_force, batch, room)]
    # Fewer chosen than read and than the batch holds: the rest were over a limit or a cap.
    held_back = len(candidates) - len(chosen) if len(chosen) < batch else 0
    if not chosen:
        return Claim([], held_back)
    # SKIP LOCKED: a row another transaction holds (a reconciler's prune) is left for the next batch.
    locked = set(
        conn.execute(
            sa.select(outbox.c.id)
            .where(
                outbox.c.id == sa.func.any(sa.literal(chosen, ARRAY(sa.BigInteger))),
                outbox.c.sent_at.is_(None),
            )
            .with_for_update(skip_locked=True)
        ).scalars()
    )
    by_id = {row.id: row for row in rows}
    messages = [
        OutboxMessage(
            row.id,
            row.run_id,
            row.tenant_id,
            row.attempt,
            row.queue,
            row.kind,
            row.request_id,
            row.trace_context,
        )
        for row in (by_id[i] for i in chosen if i in locked)
    ]
    return Claim(messages, held_back)
