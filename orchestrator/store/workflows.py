"""Workflow documents: `workflows` rows and their never-rewritten `workflow_versions`, always by tenant
(row-level security is the second wall)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.store.schema import workflow_versions, workflows


@dataclass(frozen=True)
class WorkflowRecord:
    id: UUID
    tenant_id: str
    title: str
    latest_version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> WorkflowRecord:
        return cls(**{name: row[name] for name in _WORKFLOW_FIELDS})


@dataclass(frozen=True)
class VersionRecord:
    id: UUID
    workflow_id: UUID
    version: int
    label: str | None
    document: Mapping[str, Any]
    created_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> VersionRecord:
        return cls(**{name: row[name] for name in _VERSION_FIELDS})


_WORKFLOW_FIELDS = ("id", "tenant_id", "title", "latest_version", "created_at", "updated_at")
_VERSION_FIELDS = ("id", "workflow_id", "version", "label", "document", "created_at")
_VERSION_COLUMNS = [workflow_versions.c[name] for name in _VERSION_FIELDS]


def create(conn: Connection, tenant_id: str, title: str, document: dict[str, Any]) -> VersionRecord:
    """A new document with its version 1."""
    workflow_id = uuid.uuid4()
    conn.execute(
        workflows.insert().values(id=workflow_id, tenant_id=tenant_id, title=title, latest_version=1)
    )
    return _insert_version(conn, tenant_id, workflow_id, 1, document, None)


def add_version(
    conn: Connection, tenant_id: str, workflow_id: UUID, document: dict[str, Any], label: str | None
) -> VersionRecord | None:
    """The next version of the document, or None when the tenant has no such document. The row update takes
    the document's row lock, so two versions added at once get consecutive numbers, never the same one."""
    bumped = conn.execute(
        workflows.update()
        .where(workflows.c.id == workflow_id, workflows.c.tenant_id == tenant_id)
        .values(latest_version=workflows.c.latest_version + 1, updated_at=sa.func.clock_timestamp())
        .returning(workflows.c.latest_version)
    ).scalar()
    if bumped is None:
        return None
    return _insert_version(conn, tenant_id, workflow_id, int(bumped), document, label)


def _insert_version(
    conn: Connection,
    tenant_id: str,
    workflow_id: UUID,
    version: int,
    document: dict[str, Any],
    label: str | None,
) -> VersionRecord:
    row = conn.execute(
        workflow_versions.insert()
        .values(
            id=uuid.uuid4(),
            workflow_id=workflow_id,
            tenant_id=tenant_id,
            version=version,
            label=label,
            document=document,
        )
        .returning(*_VERSION_COLUMNS)
    ).one()
    return VersionRecord.from_row(row._mapping)


def get(conn: Connection, tenant_id: str, workflow_id: UUID) -> WorkflowRecord | None:
    row = conn.execute(
        sa.select(workflows).where(workflows.c.id == workflow_id, workflows.c.tenant_id == tenant_id)
    ).first()
    return None if row is None else WorkflowRecord.from_row(row._mapping)


def versions(conn: Connection, tenant_id: str, workflow_id: UUID) -> list[VersionRecord]:
    """Every version of the document, oldest first."""
    rows = conn.execute(
        sa.select(*_VERSION_COLUMNS)
        .where(workflow_versions.c.workflow_id == workflow_id, workflow_versions.c.tenant_id == tenant_id)
        .order_by(workflow_versions.c.version)
    )
    return [VersionRecord.from_row(r._mapping) for r in rows]


def latest(
    conn: Connection, tenant_id: str, workflow_id: UUID
) -> tuple[WorkflowRecord, VersionRecord] | None:
    """The document and its newest version, in one statement."""
    row = conn.execute(
        sa.select(workflows, *[c.label(f"v_{c.name}") for c in _VERSION_COLUMNS])
        .join(
            workflow_versions,
            sa.and_(
                workflow_versions.c.workflow_id == workflows.c.id,
                workflow_versions.c.version == workflows.c.latest_version,
            ),
        )
        .where(workflows.c.id == workflow_id, workflows.c.tenant_id == tenant_id)
    ).first()
    if row is None:
        return None
    mapping = row._mapping
    version = VersionRecord(**{name: mapping[f"v_{name}"] for name in _VERSION_FIELDS})
    return WorkflowRecord.from_row(mapping), version


def page(conn: Connection, tenant_id: str, limit: int, offset: int) -> tuple[int, list[WorkflowRecord]]:
    """The tenant's documents, newest first, and how many there are in all."""
    mine = workflows.c.tenant_id == tenant_id
    total = conn.execute(sa.select(sa.func.count()).select_from(workflows).where(mine)).scalar_one()
    rows = conn.execute(
        sa.select(workflows)
        .where(mine)
        .order_by(workflows.c.created_at.desc(), workflows.c.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return int(total), [WorkflowRecord.from_row(r._mapping) for r in rows]
