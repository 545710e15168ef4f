"""How a keyed-fold projection reads and writes its rows: by primary key, a batch at a time."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection


def select_by_keys(conn: Connection, table: sa.Table, keys: Iterable[Any]) -> list[Any]:
    """The rows of `table` whose primary key is one of `keys` (a value, or a tuple for a composite key)."""
    wanted = list(keys)
    if not wanted:
        return []
    columns = list(table.primary_key.columns)
    if len(columns) == 1:
        # One array parameter instead of one parameter per key: binding hundreds of them cost more than
        # the lookup itself.
        key = columns[0]
        return list(
            conn.execute(sa.select(table).where(key == sa.func.any(sa.cast(wanted, ARRAY(key.type)))))
        )
    return list(conn.execute(sa.select(table).where(sa.tuple_(*columns).in_(wanted))))


def _as_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not a column value")


def upsert(conn: Connection, table: sa.Table, values: Iterable[dict[str, Any]]) -> None:
    """Insert the rows, or overwrite every column of those that exist: the fold computed them whole.

    The batch travels as one JSON document that PostgreSQL turns into typed rows of the table
    (jsonb_populate_recordset): one parameter instead of one per column and row, which made the
    projector spend most of its time in the driver binding parameters rather than in the database."""
    rows = list(values)
    if not rows:
        return
    quote = conn.dialect.identifier_preparer.quote  # names from our own schema, quoted all the same
    columns = [quote(name) for name in rows[0]]
    keys = [quote(c.name) for c in table.primary_key.columns]
    name = quote(table.name)
    replaced = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in keys)
    statement = (
        f"INSERT INTO {name} ({', '.join(columns)}) SELECT {', '.join(columns)} "
        f"FROM jsonb_populate_recordset(NULL::{name}, CAST(:rows AS jsonb)) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {replaced}"
    )
    document = json.dumps(rows, default=_as_json, separators=(",", ":"))
    conn.execute(sa.text(statement), {"rows": document})
