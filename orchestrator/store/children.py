"""Which runs a run started, read from the write side, and the lock that makes "cancel a run and every live
descendant" airtight against a child being submitted at the same moment.

A child's submission holds its parent's children lock shared while it reads the parent and appends; a
cascading cancel takes it exclusive, after the parent's cancel has committed, before it lists the children.
Either the child committed first (and is listed), or its submission reads the cancel and is refused."""

from __future__ import annotations

from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.store.schema import events
from schemas.events import RunCreated

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
