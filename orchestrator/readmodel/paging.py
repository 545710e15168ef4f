"""Keyset paging on (created_at, id), newest first: the order of every tenant index on `runs`, and one
that runs created meanwhile never shift."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from orchestrator.projections.runs import RunRecord
from orchestrator.store.schema import runs

Position = tuple[datetime, UUID]

NEWEST_FIRST = (runs.c.created_at.desc(), runs.c.id.desc())


def keyset_page(query: sa.Select[Any], limit: int, after: Position | None = None) -> sa.Select[Any]:
    """`query` ordered newest first, from just past `after`, at most `limit` rows."""
    if after is not None:
        query = query.where(sa.tuple_(runs.c.created_at, runs.c.id) < sa.tuple_(*after))
    return query.order_by(*NEWEST_FIRST).limit(limit)


def position_of(run: RunRecord) -> Position:
    return (run.created_at, run.id)


def encode_position(position: Position) -> dict[str, str]:
    """A position as the JSON a signed cursor carries."""
    created_at, run_id = position
    return {"c": created_at.isoformat(), "i": str(run_id)}


def decode_position(value: Any) -> Position:
    """The inverse of `encode_position`; ValueError for anything else."""
    try:
        return (datetime.fromisoformat(value["c"]), UUID(value["i"]))
    except (KeyError, TypeError, ValueError):
        raise ValueError("malformed position") from None
