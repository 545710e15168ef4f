"""Replacing a table with a copy built beside it, in the caller's transaction.

The copy is made in a schema of its own with `LIKE ... INCLUDING ALL` (columns, defaults, constraints,
indexes), filled while the original keeps serving, and swapped in: the original is dropped and the copy
moved into its schema under its name. What `LIKE` does not carry is carried here, so that everything
written against the original holds for the copy: the original's index names (later migrations drop and
create indexes by name), its row-level security and policies (the API's second wall), and its grants.
"""

from __future__ import annotations

import re
from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.engine import Connection

# "CREATE [UNIQUE] INDEX name ON schema.table USING ..." -> whether unique, and what follows the table.
_INDEX_DEF = re.compile(r"^CREATE (UNIQUE )?INDEX \S+ ON \S+ (.*)$")


def quoted(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def live_schema(conn: Connection) -> str:
    return str(conn.execute(sa.text("SELECT current_schema()")).scalar_one())


def create_copy(conn: Connection, table: str, schema: str) -> None:
    """An empty copy of the live `table` in `schema`, which must exist."""
    live = live_schema(conn)
    conn.exec_driver_sql(
        f"CREATE TABLE {quoted(conn, schema)}.{quoted(conn, table)} "
        f"(LIKE {quoted(conn, live)}.{quoted(conn, table)} INCLUDING ALL)"
    )


def _indexes(conn: Connection, schema: str, table: str) -> dict[tuple[bool, str], list[str]]:
    """The table's index names by shape (their definition without name and table), in name order."""
    rows = conn.execute(
        sa.text(
            "SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x"
            " JOIN pg_class i ON i.oid = x.indexrelid"
            " JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
            " WHERE n.nspname = :schema AND t.relname = :table ORDER BY i.relname"
        ),
        {"schema": schema, "table": table},
    )
    shapes: dict[tuple[bool, str], list[str]] = defaultdict(list)
    for name, definition in rows:
        match = _INDEX_DEF.match(definition)
        if match is None:  # never seen; refusing beats a copy whose index names silently differ
            raise RuntimeError(f"unexpected index definition: {definition}")
        shapes[(match.group(1) is not None, match.group(2))].append(name)
    return shapes


def _security(conn: Connection, schema: str, table: str) -> list[str]:
    """Statements that give the table of the same qualified name (once the copy is it) the row-level
    security, policies and grants this one has now."""
    target = f"{quoted(conn, schema)}.{quoted(conn, table)}"
    flags = conn.execute(
        sa.text(
            "SELECT c.relrowsecurity, c.relforcerowsecurity FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :schema AND c.relname = :table"
        ),
        {"schema": schema, "table": table},
    ).one()
    statements = []
    if flags[0]:
        statements.append(f"ALTER TABLE {target} ENABLE ROW LEVEL SECURITY")
    if flags[1]:
        statements.append(f"ALTER TABLE {target} FORCE ROW LEVEL SECURITY")
    policies = conn.execute(
        sa.text(
            "SELECT policyname, permissive, roles, cmd, qual, with_check FROM pg_policies"
            " WHERE schemaname = :schema AND tablename = :table ORDER BY policyname"
        ),
        {"schema": schema, "table": table},
    )
    for name, permissive, roles, command, using, check in policies:
        to = ", ".join("PUBLIC" if r == "public" else quoted(conn, r) for r in roles)
        statement = f"CREATE POLICY {quoted(conn, name)} ON {target} AS {permissive} FOR {command} TO {to}"
        if using is not None:
            statement += f" USING ({using})"
        if check is not None:
            statement += f" WITH CHECK ({check})"
        statements.append(statement)
    grants = conn.execute(
        sa.text(
            "SELECT a.grantee, r.rolname, a.privilege_type FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a"
            " LEFT JOIN pg_roles r ON r.oid = a.grantee"
            " WHERE n.nspname = :schema AND c.relname = :table AND a.grantee <> c.relowner"
            " ORDER BY 2, 3"
        ),
        {"schema": schema, "table": table},
    )
    for grantee, role, privilege in grants:
        to = "PUBLIC" if grantee == 0 else quoted(conn, role)
        statements.append(f"GRANT {privilege} ON {target} TO {to}")
    return statements


def swap_in(conn: Connection, table: str, schema: str) -> None:
    """Drop the live `table` and put its copy from `schema` in its place, under its name, with its index
    names, row-level security, policies and grants. Takes the table's ACCESS EXCLUSIVE lock: readers wait
    for the caller's commit, then read the copy."""
    live = live_schema(conn)
    old = f"{quoted(conn, live)}.{quoted(conn, table)}"
    new = f"{quoted(conn, schema)}.{quoted(conn, table)}"
    conn.exec_driver_sql(f"LOCK TABLE {old} IN ACCESS EXCLUSIVE MODE")
    names, copies = _indexes(conn, live, table), _indexes(conn, schema, table)
    if {shape: len(n) for shape, n in names.items()} != {shape: len(n) for shape, n in copies.items()}:
        raise RuntimeError(f"the copy of {table} does not have the original's indexes")
    security = _security(conn, live, table)
    # Out of the way first: a name LIKE chose may be taken by another table's index in the live schema.
    renames: list[tuple[str, str]] = []  # (parked name, the original's name)
    for shape, copy_names in copies.items():
        for number, (copy_name, name) in enumerate(zip(copy_names, names[shape], strict=True)):
            parked = f"orch_swap_{len(renames)}_{number}"
            conn.exec_driver_sql(
                f"ALTER INDEX {quoted(conn, schema)}.{quoted(conn, copy_name)} RENAME TO {parked}"
            )
            renames.append((parked, name))
    conn.exec_driver_sql(f"DROP TABLE {old}")
    conn.exec_driver_sql(f"ALTER TABLE {new} SET SCHEMA {quoted(conn, live)}")
    for parked, name in renames:
        conn.exec_driver_sql(f"ALTER INDEX {quoted(conn, live)}.{parked} RENAME TO {quoted(conn, name)}")
    for statement in security:
        conn.exec_driver_sql(statement)  # DDL text from the catalog, no parameters
