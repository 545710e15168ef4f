"""Which runs a run started, read from the write side, and the lock that makes "cancel a run and every live
descendant" airtight against a child being submitted at the same moment.

A child's submission holds its parent's children lock shared while it reads the parent and appends; a
cascading cancel takes it exclusive, after the parent's cancel has committed, before it lists the children.
Either the child committed first (and is listed), or its submission reads the cancel and is refused."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.engine import Connection

from orchestrator.store.schema import events
from schemas.events import TERMINAL_EVENT_TYPES, RunCreated, RunParked, RunResumed

_NAMESPACE = 0x6368696C  # "chil": keeps these keys apart from the other advisory locks' constants


def _key(parent_id: UUID) -> int:
    return int.from_bytes(parent_id.bytes[:8], "big", signed=True) ^ _NAMESPACE


def hold_for_new_child(conn: Connection, parent_id: UUID) -> None:
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock_shared(_key(parent_id))))


def children_of(conn: Connection, tenant_id: str, parent_id: UUID) -> list[UUID]:
    """The runs created with `parent_id`, once every child submission in flight has committed or failed.
    Served by the partial expression index of migration 0011."""
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_key(parent_id))))
    query = sa.select(events.c.stream_id).where(
        # A literal, not a parameter: the planner must see it to use the partial index.
        events.c.type == sa.literal_column(f"'{RunCreated.type}'"),
        events.c.data["parent_id"].astext == str(parent_id),
        events.c.tenant_id == tenant_id,
    )
    return [row[0] for row in conn.execute(query)]


def unfinished(conn: Connection, tenant_id: str, run_ids: Sequence[UUID]) -> int:
    """How many of `run_ids` have no terminal event yet. A statement of its own, so under READ COMMITTED it
    sees every terminal event committed before it began: the caller holds the parent's stream lock, which a
    child's terminal write takes too, so a child ending at this moment either is counted as ended here or
    finds the parent parked and resumes it (services.RunService.resume_if_ready)."""
    if not run_ids:
        return 0
    ended = sa.select(sa.func.count(sa.distinct(events.c.stream_id))).where(
        events.c.stream_id.in_(list(run_ids)),
        events.c.tenant_id == tenant_id,
        events.c.type.in_(sorted(TERMINAL_EVENT_TYPES)),
    )
    return len(set(run_ids)) - int(conn.execute(ended).scalar_one())


def parked_runs(conn: Connection, limit: int = 200) -> list[tuple[UUID, str]]:
    """Runs ready to resume: their latest wait (RunParked) has not been followed by a resume or an end, and
    every child it awaits has ended. (run, tenant), oldest wait first. The readiness test is in the query,
    not left to the caller: a page of runs still waiting on live children must never hide one that is ready
    behind it. Served by the partial index on RunParked events (migration 0014)."""
    parked, later, child_end = events.alias("parked"), events.alias("later"), events.alias("child_end")
    over = sa.exists().where(
        later.c.stream_id == parked.c.stream_id,
        later.c.version > parked.c.version,
        later.c.type.in_([RunResumed.type, *sorted(TERMINAL_EVENT_TYPES)]),
    )
    awaited = (
        sa.func.jsonb_array_elements_text(parked.c.data["awaiting"]).table_valued("value").alias("awaited")
    )
    live_child = (
        sa.select(sa.literal(1))
        .select_from(awaited)
        .where(
            ~sa.exists().where(
                child_end.c.stream_id == sa.cast(awaited.c.value, PG_UUID(as_uuid=True)),
                child_end.c.tenant_id == parked.c.tenant_id,
                child_end.c.type.in_(sorted(TERMINAL_EVENT_TYPES)),
            )
        )
        .exists()
    )
    query = (
        sa.select(parked.c.stream_id, parked.c.tenant_id)
        .where(parked.c.type == sa.literal_column(f"'{RunParked.type}'"), ~over, ~live_child)
        .order_by(parked.c.position)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in conn.execute(query)]
