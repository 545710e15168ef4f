"""Tenant scoping of API transactions for row-level security (migration 0003).

The API authenticates a request, then names its tenants and its key in a context variable; every
transaction the API's engine begins while it is set runs as `orch_app` with `orch.tenants` set locally, so
even a query that forgot its tenant filter sees only that tenant's rows.

The same statement checks that the request's key is still active. The API keeps the keys it has seen in
memory (`orchestrator.api.key_cache`) instead of looking each one up again, and this check is what keeps a
revocation effective on the very next request: a revoked key's transaction sees no tenant at all, and
`Unauthenticated` is raised before anything is read or written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, replace
from uuid import UUID
from weakref import WeakSet

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from orchestrator.store.keys import IS_ACTIVE, Unauthenticated

APP_ROLE = "orch_app"


@dataclass(frozen=True)
class Scope:
    tenants: str  # a JSON list, as the policies' orch_tenants() parses it
    key_id: UUID | None = None  # the key to check in each transaction; None: no check


current_scope: ContextVar[Scope | None] = ContextVar("current_scope", default=None)


def scope_to(tenants: Iterable[str], key_id: UUID | None = None) -> None:
    current_scope.set(Scope(json.dumps(sorted(tenants)), key_id))


def without_key_check() -> None:
    """Keep the tenants but stop checking the key, for work shared by requests of several keys (one
    stream's read serves every client of the run): one key's revocation must not fail the others' reads."""
    scope = current_scope.get()
    if scope is not None:
        current_scope.set(replace(scope, key_id=None))


_INSTALLED: WeakSet[Engine] = WeakSet()

# One round trip each, built once: `role` set locally is SET LOCAL ROLE, and the tenants ride along.
_SCOPE = sa.select(
    sa.func.set_config("role", APP_ROLE, True),
    sa.func.set_config("orch.tenants", sa.bindparam("tenants", type_=sa.String), True),
)
# The tenants come first: their EXISTS is planned and permission-checked as the engine's own role, before
# the role changes. A revoked key gets the empty list, so even a caller that ignored the error would see
# no row.
_SCOPE_FOR_KEY = sa.select(
    sa.func.set_config(
        "orch.tenants",
        sa.case((IS_ACTIVE, sa.bindparam("tenants", type_=sa.String)), else_=sa.literal("[]")),
        True,
    ),
    sa.func.set_config("role", APP_ROLE, True),
)


def install(engine: Engine) -> None:
    """Switch each transaction begun under a tenant scope to the application role (once per engine)."""
    if engine in _INSTALLED:
        return
    _INSTALLED.add(engine)

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        scope = current_scope.get()
        if scope is None:
            return
        if scope.key_id is None:
            conn.execute(_SCOPE, {"tenants": scope.tenants})
            return
        applied = conn.execute(_SCOPE_FOR_KEY, {"tenants": scope.tenants, "key_id": scope.key_id}).scalar()
        if applied != scope.tenants:
            raise Unauthenticated()
