"""Run counts per (tenant, kind, status, top level), kept beside the `runs` rows: each batch adds the
difference between the rows it touched before and after, so the counts always equal a COUNT(*) over
`runs` grouped the same way, and a rebuild (which empties both) reproduces them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from orchestrator.projections.runs import RunRecord
from orchestrator.store.schema import run_counts

CountKey = tuple[str, str, str, bool]
TABLE = run_counts


def _key(run: RunRecord) -> CountKey:
    return (run.tenant_id, run.kind, run.status.value, run.parent_id is None)


def deltas(before: Mapping[UUID, RunRecord], after: Mapping[UUID, RunRecord]) -> Counter[CountKey]:
    """What a batch changes: -1 where a touched run was counted, +1 where it is counted now. Pure."""
    change: Counter[CountKey] = Counter()
    for run_id, run in after.items():
        change[_key(run)] += 1
        if (old := before.get(run_id)) is not None:
            change[_key(old)] -= 1
    return Counter({key: n for key, n in change.items() if n})


def apply(conn: Connection, before: Mapping[UUID, RunRecord], after: Mapping[UUID, RunRecord]) -> None:
    _write(conn, deltas(before, after))


def remove(conn: Connection, gone: Iterable[RunRecord]) -> None:
    """Uncount deleted runs (retention), so the counts equal what a rebuild of the remaining log gives."""
    change: Counter[CountKey] = Counter()
    for run in gone:
        change[_key(run)] -= 1
    _write(conn, change)


def _write(conn: Connection, change: Counter[CountKey]) -> None:
    if not change:
        return
    rows = [
        {"tenant_id": t, "kind": k, "status": s, "top_level": top, "count": n}
        for (t, k, s, top), n in sorted(change.items())  # a fixed order: no deadlock between writers
    ]
    statement = insert(run_counts)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["tenant_id", "kind", "status", "top_level"],
            set_={"count": run_counts.c.count + statement.excluded["count"]},
        ),
        rows,
    )
    # A count that reached 0 is a row nobody needs; deleting it keeps a rebuild's table equal to ours.
    conn.execute(run_counts.delete().where(run_counts.c.count == 0))


def totals(
    conn: Connection,
    tenant_id: str,
    *,
    kinds: tuple[str, ...] = (),
    status: str | None = None,
    top_level_only: bool = False,
) -> int:
    """How many of the tenant's runs match: a sum over a few counter rows."""
    query = sa.select(sa.func.coalesce(sa.func.sum(run_counts.c.count), 0)).where(
        run_counts.c.tenant_id == tenant_id
    )
    if kinds:
        query = query.where(run_counts.c.kind.in_(kinds))
    if status:
        query = query.where(run_counts.c.status == status)
    if top_level_only:
        query = query.where(run_counts.c.top_level.is_(True))
    return int(conn.execute(query).scalar_one())


def by_status(conn: Connection, tenant_id: str, *, kind: str | None = None) -> dict[str, int]:
    """The tenant's run counts per status (only statuses that have runs), optionally of one kind."""
    query = (
        sa.select(run_counts.c.status, sa.func.sum(run_counts.c.count))
        .where(run_counts.c.tenant_id == tenant_id)
        .group_by(run_counts.c.status)
    )
    if kind:
        query = query.where(run_counts.c.kind == kind)
    return {status: int(n) for status, n in conn.execute(query)}
