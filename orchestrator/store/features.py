"""Features: rows of the `features` table, always by tenant (row-level security is the second wall)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.store.schema import features


@dataclass(frozen=True)
class FeatureRecord:
    id: UUID
    tenant_id: str
    name: str
    url: str
    format: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> FeatureRecord:
        return cls(**{name: row[name] for name in ("id", "tenant_id", "name", "url", "format", "created_at")})


def new_id() -> UUID:
    return uuid.uuid4()


def insert(
    conn: Connection, tenant_id: str, name: str, url: str, format: str, feature_id: UUID | None = None
) -> FeatureRecord:
    row = conn.execute(
        features.insert()
        .values(id=feature_id or new_id(), tenant_id=tenant_id, name=name, url=url, format=format)
        .returning(*features.c)
    ).one()
    return FeatureRecord.from_row(row._mapping)


def get(conn: Connection, tenant_id: str, feature_id: UUID) -> FeatureRecord | None:
    row = conn.execute(
        sa.select(features).where(features.c.tenant_id == tenant_id, features.c.id == feature_id)
    ).first()
    return None if row is None else FeatureRecord.from_row(row._mapping)


def page(conn: Connection, tenant_id: str, limit: int, offset: int) -> tuple[int, list[FeatureRecord]]:
    """The tenant's features, newest first, and how many there are in all."""
    mine = features.c.tenant_id == tenant_id
    total = conn.execute(sa.select(sa.func.count()).select_from(features).where(mine)).scalar_one()
    rows = conn.execute(
        sa.select(features)
        .where(mine)
        .order_by(features.c.created_at.desc(), features.c.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return int(total), [FeatureRecord.from_row(r._mapping) for r in rows]
