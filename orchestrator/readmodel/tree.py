"""Read-model queries the public surfaces need beyond `readmodel`: attribute filters with offset pages and
totals, whole run trees, and the steps of a run's latest attempt.

Like `readmodel`, every query takes the tenant, so another tenant's run simply does not exist here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.store.schema import run_steps, runs


@dataclass(frozen=True)
class AttributeFilters:
    """Equality on creation attributes (`attributes @> {...}`, served by the GIN index), plus status."""

    attributes: Mapping[str, str] = field(default_factory=dict)
    status: str | None = None
    root_only: bool = False


def _filtered(tenant_id: str, filters: AttributeFilters) -> sa.Select[Any]:
    query = sa.select(runs).where(runs.c.tenant_id == tenant_id)
    if filters.attributes:
        query = query.where(runs.c.attributes.contains(dict(filters.attributes)))
    if filters.status:
        query = query.where(runs.c.status == filters.status)
    if filters.root_only:
        query = query.where(runs.c.parent_id.is_(None))
    return query


def page_runs(
    conn: Connection, tenant_id: str, filters: AttributeFilters, limit: int, offset: int
) -> tuple[list[sa.Row[Any]], int]:
    """One page, newest first, and the number of runs matching the filters.

    Both run in the caller's connection; under READ COMMITTED a run committed between them can make the
    total and the page disagree by that run, which offset paging cannot avoid anyway.
    """
    query = _filtered(tenant_id, filters)
    total = conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
    page = query.order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(limit).offset(offset)
    return list(conn.execute(page)), int(total)


def run_tree(conn: Connection, tenant_id: str, run_id: UUID) -> list[sa.Row[Any]] | None:
    """Every run sharing `run_id`'s root, root first, depth-first; None when the run is not the tenant's."""
    root = conn.execute(
        sa.select(runs.c.root_id).where(runs.c.tenant_id == tenant_id, runs.c.id == run_id)
    ).scalar()
    if root is None:
        return None
    members = conn.execute(
        sa.select(runs)
        .where(runs.c.tenant_id == tenant_id, runs.c.root_id == root)
        .order_by(runs.c.created_at, runs.c.id)
    )
    return depth_first(list(members), root)


def depth_first(rows: list[sa.Row[Any]], root_id: UUID) -> list[sa.Row[Any]]:
    """Pre-order walk; `rows` must already be in sibling order (created_at, id).

    Iterative, so a deep chain of child runs cannot exhaust the recursion limit. A row whose parent is
    missing from the tree (not yet projected) is still listed, after the reachable ones.
    """
    by_id = {row._mapping["id"]: row for row in rows}
    children: dict[UUID, list[sa.Row[Any]]] = defaultdict(list)
    for row in rows:
        parent = row._mapping["parent_id"]
        if parent is not None:
            children[parent].append(row)
    ordered: list[sa.Row[Any]] = []
    stack = [by_id[root_id]] if root_id in by_id else []
    while stack:
        row = stack.pop()
        ordered.append(row)
        stack.extend(reversed(children[row._mapping["id"]]))
    seen = {row._mapping["id"] for row in ordered}
    return ordered + [row for row in rows if row._mapping["id"] not in seen]


def latest_steps(conn: Connection, tenant_id: str, run_id: UUID, attempt: int) -> list[sa.Row[Any]]:
    """The steps of one attempt in the order the job took them; earlier attempts are history."""
    query = (
        sa.select(run_steps)
        .where(
            run_steps.c.tenant_id == tenant_id, run_steps.c.run_id == run_id, run_steps.c.attempt == attempt
        )
        .order_by(run_steps.c.sequence)
    )
    return list(conn.execute(query))
