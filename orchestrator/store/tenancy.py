"""Tenant scoping of API transactions for row-level security (migration 0003).

The API authenticates a request, then names its tenants in a context variable; every transaction
the API's engine begins while it is set runs as `orch_app` with `orch.tenants` set locally, so even
a query that forgot its tenant filter sees only that tenant's rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextvars import ContextVar
from weakref import WeakSet

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

APP_ROLE = "orch_app"

current_tenants: ContextVar[tuple[str, ...] | None] = ContextVar("current_tenants", default=None)


def scope_to(tenants: Iterable[str]) -> None:
    current_tenants.set(tuple(sorted(tenants)))


_INSTALLED: WeakSet[Engine] = WeakSet()

# One round trip, built once: `role` set locally is SET LOCAL ROLE, and the tenants ride along.
_SCOPE = sa.select(
    sa.func.set_config("role", APP_ROLE, True),
    sa.func.set_config("orch.tenants", sa.bindparam("tenants", type_=sa.String), True),
)


def install(engine: Engine) -> None:
    """Switch each transaction begun under a tenant scope to the application role (once per engine)."""
    if engine in _INSTALLED:
        return
    _INSTALLED.add(engine)

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        tenants = current_tenants.get()
        if tenants is None:
            return
        conn.execute(_SCOPE, {"tenants": json.dumps(list(tenants))})
