"""The transactional outbox: dispatch intents written with the events, published by the relay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.store.schema import outbox

OUTBOX_CHANNEL = "orch_outbox"


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    run_id: UUID
    tenant_id: str
    attempt: int
    queue: str


def enqueue(
    conn: Connection,
    run_id: UUID,
    tenant_id: str,
    attempt: int,
    queue: str,
    not_before: datetime | None = None,
) -> int:
    values: dict[str, object] = {"run_id": run_id, "tenant_id": tenant_id, "attempt": attempt, "queue": queue}
    if not_before is not None:
        values["not_before"] = not_before
    # The insert's trigger (migration 0006) wakes the relay on OUTBOX_CHANNEL at commit.
    return int(conn.execute(outbox.insert().values(**values).returning(outbox.c.id)).scalar_one())


def enqueue_first_attempts(conn: Connection, runs: Sequence[tuple[UUID, str]], queues: Sequence[str]) -> None:
    """Dispatch intents for the first attempt of many new runs, in one statement: (run_id, tenant_id) each,
    with its queue at the same index."""
    if runs:
        conn.execute(
            outbox.insert(),
            [
                {"run_id": run_id, "tenant_id": tenant_id, "attempt": 1, "queue": queue}
                for (run_id, tenant_id), queue in zip(runs, queues, strict=True)
            ],
        )


def claim_due(conn: Connection, limit: int = 100) -> list[OutboxMessage]:
    """Lock unsent, due rows. SKIP LOCKED lets several relays share the work without double claims."""
    query = (
        sa.select(outbox.c.id, outbox.c.run_id, outbox.c.tenant_id, outbox.c.attempt, outbox.c.queue)
        .where(outbox.c.sent_at.is_(None), outbox.c.not_before <= sa.func.now())
        .order_by(outbox.c.not_before, outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [OutboxMessage(*row) for row in conn.execute(query)]


def mark_sent(conn: Connection, ids: list[int]) -> None:
    if ids:
        conn.execute(outbox.update().where(outbox.c.id.in_(ids)).values(sent_at=sa.func.clock_timestamp()))


def seconds_until_next_due(conn: Connection) -> float | None:
    value = conn.execute(
        sa.select(sa.func.extract("epoch", sa.func.min(outbox.c.not_before) - sa.func.now())).where(
            outbox.c.sent_at.is_(None)
        )
    ).scalar()
    return None if value is None else max(0.0, float(value))
