"""Replacing a table with a copy built beside it, in the caller's transaction.

The copy is made in a schema of its own (`LIKE ... INCLUDING ALL EXCLUDING INDEXES`: columns, defaults,
check constraints), with the original's primary and unique constraints under their names (the fold's
upserts need them), filled while the original keeps serving, given the original's other indexes under
their names once filled (building an index over the rows at once beats keeping it up row by row), and
swapped in: the original is dropped and the copy moved into its schema under its name. What `LIKE` does
not carry is carried here, so that everything written against the original holds for the copy: its index
names (later migrations drop and create indexes by name), its row-level security and policies (the API's
second wall), and its grants.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.engine import Connection

# "CREATE [UNIQUE] INDEX name ON schema.table USING ..." -> whether unique, the name, what follows the table.
_INDEX_DEF = re.compile(r"^CREATE (UNIQUE )?INDEX (\S+) ON \S+ (.*)$")


def quoted(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def live_schema(conn: Connection) -> str:
    return str(conn.execute(sa.text("SELECT current_schema()")).scalar_one())


def _qualified(conn: Connection, schema: str, table: str) -> str:
    return f"{quoted(conn, schema)}.{quoted(conn, table)}"


def create_copy(conn: Connection, table: str, schema: str) -> None:
    """An empty copy of the live `table` in `schema` (which must exist), with its primary and unique
    constraints but none of its other indexes yet (`index_copy`)."""
    live = live_schema(conn)
    copy = _qualified(conn, schema, table)
    conn.exec_driver_sql(
        f"CREATE TABLE {copy} (LIKE {_qualified(conn, live, table)} INCLUDING ALL EXCLUDING INDEXES)"
    )
    constraints = conn.execute(
        sa.text(
            "SELECT conname, pg_get_constraintdef(c.oid) FROM pg_constraint c"
            " WHERE c.conrelid = CAST(:table AS regclass) AND c.contype IN ('p', 'u', 'x') ORDER BY conname"
        ),
        {"table": _qualified(conn, live, table)},
    )
    for name, definition in constraints:
        conn.exec_driver_sql(f"ALTER TABLE {copy} ADD CONSTRAINT {quoted(conn, name)} {definition}")


def _indexes(conn: Connection, schema: str, table: str, *, of_constraints: bool) -> dict[str, str]:
    """The table's indexes (name -> definition): those that back a constraint, or the others."""
    rows = conn.execute(
        sa.text(
            "SELECT i.relname, pg_get_indexdef(x.indexrelid),"
            " EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid"
            " AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u', 'x'))"
            " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
            " WHERE x.indrelid = CAST(:table AS regclass) ORDER BY i.relname"
        ),
        {"table": _qualified(conn, schema, table)},
    )
    return {name: definition for name, definition, backs in rows if backs == of_constraints}


def index_copy(conn: Connection, table: str, schema: str) -> None:
    """Give the copy in `schema` every index of the live table that no constraint owns, same names."""
    for name, definition in _indexes(conn, live_schema(conn), table, of_constraints=False).items():
        match = _INDEX_DEF.match(definition)
        if match is None:  # never seen; refusing beats a copy without one of the original's indexes
            raise RuntimeError(f"unexpected index definition: {definition}")
        unique, rest = match.group(1) or "", match.group(3)
        conn.exec_driver_sql(
            f"CREATE {unique}INDEX {quoted(conn, name)} ON {_qualified(conn, schema, table)} {rest}"
        )


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
    """Drop the live `table` and put its copy from `schema` in its place, under its name, with its row-level
    security, policies and grants (the copy already bears its index names: `index_copy`). Takes the table's
    ACCESS EXCLUSIVE lock: readers wait for the caller's commit, then read the copy."""
    live = live_schema(conn)
    old, new = _qualified(conn, live, table), _qualified(conn, schema, table)
    conn.exec_driver_sql(f"LOCK TABLE {old} IN ACCESS EXCLUSIVE MODE")
    for backs in (True, False):
        if set(_indexes(conn, live, table, of_constraints=backs)) != set(
            _indexes(conn, schema, table, of_constraints=backs)
        ):  # an index added to the original meanwhile (a migration): keep the original
            raise RuntimeError(f"the copy of {table} does not have the original's indexes")
    security = _security(conn, live, table)
    conn.exec_driver_sql(f"DROP TABLE {old}")
    conn.exec_driver_sql(f"ALTER TABLE {new} SET SCHEMA {quoted(conn, live)}")
    for statement in security:
        conn.exec_driver_sql(statement)  # DDL text from the catalog, no parameters
