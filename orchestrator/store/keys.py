"""API key records: digests only, never the key itself."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.store import key_format as apikeys
from orchestrator.store.schema import api_keys


class Unauthenticated(Exception):
    """Missing, malformed, unknown or revoked key: one answer for all, so none can be told apart."""


@dataclass(frozen=True)
class KeyRecord:
    id: UUID
    tenant_id: str
    prefix: str
    name: str | None
    created_at: datetime
    revoked_at: datetime | None
    grants: tuple[str, ...] = ()

    @property
    def tenants(self) -> frozenset[str]:
        """Every tenant this key may act for: its own and any granted."""
        return frozenset((self.tenant_id, *self.grants))


_COLUMNS = (
    api_keys.c.id,
    api_keys.c.tenant_id,
    api_keys.c.prefix,
    api_keys.c.name,
    api_keys.c.created_at,
    api_keys.c.revoked_at,
    api_keys.c.grants,
)


def _record(row: Any) -> KeyRecord:
    # The selected columns (_COLUMNS) carry exactly the dataclass's field names.
    fields = dict(row._mapping)
    return KeyRecord(**{**fields, "grants": tuple(fields["grants"] or ())})


def create(
    conn: Connection, tenant_id: str, name: str | None = None, grants: tuple[str, ...] = ()
) -> tuple[str, KeyRecord]:
    """Create a key; the plaintext is returned once and never stored."""
    key = apikeys.generate()
    row = conn.execute(
        api_keys.insert()
        .values(
            id=uuid.uuid4(),
            tenant_id=tenant_id,
            digest=apikeys.digest(key),
            prefix=apikeys.display_prefix(key),
            name=name,
            grants=list(grants),
        )
        .returning(*_COLUMNS)
    ).one()
    return key, _record(row)


# Every request's lookup, built once.
_ACTIVE_BY_DIGEST = sa.select(*_COLUMNS).where(
    api_keys.c.digest == sa.bindparam("digest"), api_keys.c.revoked_at.is_(None)
)


def find_active(conn: Connection, key: str) -> KeyRecord | None:
    if not apikeys.is_well_formed(key):
        return None
    return find_active_by_digest(conn, apikeys.digest(key))


def find_active_by_digest(conn: Connection, digest: str) -> KeyRecord | None:
    row = conn.execute(_ACTIVE_BY_DIGEST, {"digest": digest}).first()
    return _record(row) if row else None


# Whether the key is still active, by its id (the primary key): what every scoped transaction checks.
IS_ACTIVE = sa.exists().where(api_keys.c.id == sa.bindparam("key_id"), api_keys.c.revoked_at.is_(None))


def revoke(conn: Connection, key_id_or_prefix: str) -> int:
    """Revoke by id or display prefix; returns how many keys were revoked."""
    condition = api_keys.c.prefix == key_id_or_prefix
    with contextlib.suppress(ValueError):
        condition = sa.or_(condition, api_keys.c.id == uuid.UUID(key_id_or_prefix))
    result = conn.execute(
        api_keys.update()
        .where(condition, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=sa.func.clock_timestamp())
    )
    return result.rowcount


def list_keys(conn: Connection, tenant_id: str | None = None) -> list[KeyRecord]:
    query = sa.select(*_COLUMNS).order_by(api_keys.c.created_at)
    if tenant_id is not None:
        query = query.where(api_keys.c.tenant_id == tenant_id)
    return [_record(row) for row in conn.execute(query)]
