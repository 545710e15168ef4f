"""The transactional outbox: dispatch intents written with the events, published by the relay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
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
    kind: str = ""
    request_id: str | None = None
    trace_context: dict[str, str] | None = None


@dataclass(frozen=True)
class FirstAttempt:
    """The dispatch intent of a new run's first attempt."""

    run_id: UUID
    tenant_id: str
    kind: str
    queue: str
    priority: int = 0
    not_before: datetime | None = None  # None: due at once
    request_id: str | None = None  # the request that submitted the run (orchestrator.correlation)
    trace_context: dict[str, str] | None = None  # its span's, when tracing is on (orchestrator.tracing)


def enqueue(
    conn: Connection,
    run_id: UUID,
    tenant_id: str,
    attempt: int,
    queue: str,
    not_before: datetime | None = None,
    *,
    kind: str = "",
    priority: int = 0,
    request_id: str | None = None,
    trace_context: dict[str, str] | None = None,
) -> int:
    """A later dispatch of a run (a retry, a resume, a re-publish). Without `request_id` and
    `trace_context` it carries the run's first dispatch's, so every attempt, whoever schedules it (a
    worker, the reconciler), logs the id of the request that submitted the run and traces under it."""

    def inherited(column: str) -> Any:
        first = outbox.alias("first")
        return (
            sa.select(first.c[column]).where(first.c.run_id == run_id).order_by(first.c.id).limit(1)
        ).scalar_subquery()

    values: dict[str, object] = {
        "run_id": run_id,
        "tenant_id": tenant_id,
        "attempt": attempt,
        "queue": queue,
        "kind": kind,
        "priority": priority,
        "request_id": request_id if request_id is not None else inherited("request_id"),
        "trace_context": trace_context if trace_context is not None else inherited("trace_context"),
    }
    if not_before is not None:
        values["not_before"] = not_before
    # The insert's trigger (migration 0006) wakes the relay on OUTBOX_CHANNEL at commit.
    return int(conn.execute(outbox.insert().values(**values).returning(outbox.c.id)).scalar_one())


# One statement for every row, so each names its not_before; NULL means now, the column's default. Built
# once, as the hot path's statements in store.events are.
_FIRST_ATTEMPTS = outbox.insert().values(
    not_before=sa.func.coalesce(sa.bindparam("due", type_=outbox.c.not_before.type), sa.func.now())
)


def enqueue_first_attempts(conn: Connection, runs: Sequence[FirstAttempt]) -> None:
    """Dispatch intents for the first attempt of many new runs, in one statement."""
    if runs:
        conn.execute(
            _FIRST_ATTEMPTS,
            [
                {
                    "run_id": run.run_id,
                    "tenant_id": run.tenant_id,
                    "attempt": 1,
                    "queue": run.queue,
                    "kind": run.kind,
                    "priority": run.priority,
                    "due": run.not_before,
                    "request_id": run.request_id,
                    "trace_context": run.trace_context,
                }
                for run in runs
            ],
        )


def mark_sent(conn: Connection, ids: list[int]) -> None:
    if ids:
        conn.execute(outbox.update().where(outbox.c.id.in_(ids)).values(sent_at=sa.func.clock_timestamp()))


def seconds_until_next_due(conn: Connection) -> float | None:
    """How long until a row that is not due yet becomes due. Rows already due but held back by a limit do
    not count: the relay is woken for them when a slot frees (store.slots.release)."""
    value = conn.execute(
        sa.select(sa.func.extract("epoch", sa.func.min(outbox.c.not_before) - sa.func.now())).where(
            outbox.c.sent_at.is_(None), outbox.c.not_before > sa.func.now()
        )
    ).scalar()
    return None if value is None else max(0.0, float(value))
