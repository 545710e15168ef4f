"""How a keyed-fold projection reads and writes its rows: by primary key, a batch at a time."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection


def select_by_keys(conn: Connection, table: sa.Table, keys: Iterable[Any]) -> list[Any]:
    """The rows of `table` whose primary key is one of `keys` (a value, or a tuple for a composite key)."""
    wanted = list(keys)
    if not wanted:
        return []
    columns = list(table.primary_key.columns)
    key = columns[0] if len(columns) == 1 else sa.tuple_(*columns)
    return list(conn.execute(sa.select(table).where(key.in_(wanted))))


def upsert(conn: Connection, table: sa.Table, values: Iterable[dict[str, Any]]) -> None:
    """Insert the rows, or overwrite every column of those that exist: the fold computed them whole."""
    rows = list(values)
    if not rows:
        return
    statement = insert(table)
    keys = [c.name for c in table.primary_key.columns]
    replaced = {name: statement.excluded[name] for name in rows[0] if name not in keys}
    conn.execute(statement.on_conflict_do_update(index_elements=keys, set_=replaced), rows)
