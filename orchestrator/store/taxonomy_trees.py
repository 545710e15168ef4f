"""SQL over `taxonomy_nodes` and `taxonomy_assignments`: the tree of one taxonomy run, written as a whole."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.store.schema import records, taxonomy_assignments, taxonomy_nodes
from schemas.taxonomy import Assignment, AssignmentView, NodeView, TreeNode

_INSERT_ASSIGNMENTS = sa.text(
    """
    INSERT INTO taxonomy_assignments (run_id, record_id, tenant_id, node_id, path)
    SELECT :run_id, u.record_id, :tenant_id, u.node_id, u.path::jsonb
    FROM unnest(CAST(:record_id AS bigint[]), CAST(:node_id AS int[]), CAST(:path AS text[]))
        AS u(record_id, node_id, path)
    """
)


def replace_tree(
    conn: Connection,
    tenant_id: str,
    run_id: UUID,
    nodes: Sequence[TreeNode],
    assignments: Sequence[Assignment],
) -> None:
    """Delete what an earlier attempt of the run stored, then insert the tree: in the caller's transaction,
    so a retry after a crash leaves exactly one tree, never two halves."""
    for table in (taxonomy_assignments, taxonomy_nodes):
        conn.execute(sa.delete(table).where(table.c.tenant_id == tenant_id, table.c.run_id == run_id))
    if nodes:
        conn.execute(
            sa.insert(taxonomy_nodes),
            [
                {
                    "run_id": run_id,
                    "node_id": n.id,
                    "tenant_id": tenant_id,
                    "parent_id": n.parent_id,
                    "depth": n.depth,
                    "label": n.label,
                    "top_terms": list(n.top_terms),
                    "size": n.size,
                    "representative_record_ids": list(n.representative_record_ids),
                }
                for n in nodes
            ],
        )
    if assignments:
        conn.execute(
            _INSERT_ASSIGNMENTS,
            {
                "run_id": run_id,
                "tenant_id": tenant_id,
                "record_id": [a.record_id for a in assignments],
                "node_id": [a.node_id for a in assignments],
                "path": [json.dumps(list(a.path)) for a in assignments],
            },
        )


def nodes(conn: Connection, tenant_id: str, run_id: UUID) -> list[NodeView]:
    query = (
        sa.select(taxonomy_nodes)
        .where(taxonomy_nodes.c.tenant_id == tenant_id, taxonomy_nodes.c.run_id == run_id)
        .order_by(taxonomy_nodes.c.node_id)
    )
    return [
        NodeView(
            id=row.node_id,
            parent_id=row.parent_id,
            depth=row.depth,
            label=row.label,
            top_terms=list(row.top_terms),
            size=row.size,
            representative_record_ids=list(row.representative_record_ids),
        )
        for row in conn.execute(query)
    ]


def assignments(
    conn: Connection, tenant_id: str, run_id: UUID, limit: int, after_record_id: int | None
) -> list[AssignmentView]:
    """One page in record id order, with each record's external id."""
    a = taxonomy_assignments
    query: sa.Select[Any] = (
        sa.select(a.c.record_id, records.c.external_id, a.c.node_id, a.c.path)
        .join(records, sa.and_(records.c.id == a.c.record_id, records.c.tenant_id == a.c.tenant_id))
        .where(a.c.tenant_id == tenant_id, a.c.run_id == run_id)
    )
    if after_record_id is not None:
        query = query.where(a.c.record_id > after_record_id)
    rows = conn.execute(query.order_by(a.c.record_id).limit(limit))
    return [
        AssignmentView(
            record_id=row.record_id, external_id=row.external_id, node_id=row.node_id, path=list(row.path)
        )
        for row in rows
    ]
