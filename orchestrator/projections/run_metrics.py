"""What `/metrics` reads about runs beyond `run_counts`, kept the same way (beside the `runs` rows, in the
projector's transaction): how many runs of each tenant and kind ever started, and the queue-wait and
duration histograms per kind. Each batch adds the difference between the rows it touched before and after,
so these always equal an aggregate of `runs`, and a rebuild (which empties them) reproduces them."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from uuid import UUID

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from orchestrator.projections.runs import RunRecord
from orchestrator.store.schema import run_latency, run_started

# Upper bounds in seconds. Queue wait is creation to first start; duration is first start to the end.
QUEUE_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
DURATION_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)
BUCKETS = {"queue_wait": QUEUE_WAIT_BUCKETS, "duration": DURATION_BUCKETS}
TABLES = (run_started, run_latency)

StartedKey = tuple[str, str]  # tenant, kind
LatencyKey = tuple[str, str, float]  # kind, metric, bucket bound


def bucket(metric: str, seconds: float) -> float:
    """The smallest bound at or above `seconds` (infinity past the last)."""
    bounds = BUCKETS[metric]
    index = bisect_left(bounds, seconds)
    return bounds[index] if index < len(bounds) else math.inf


def _observations(run: RunRecord) -> Iterator[tuple[str, float]]:
    if run.started_at is None:
        return
    yield "queue_wait", max(0.0, (run.started_at - run.created_at).total_seconds())
    if run.finished_at is not None:
        yield "duration", max(0.0, (run.finished_at - run.started_at).total_seconds())


class Deltas:
    """What a batch changes, as additions to the two tables. Pure."""

    def __init__(self, before: Mapping[UUID, RunRecord], after: Mapping[UUID, RunRecord]) -> None:
        self.started: Counter[StartedKey] = Counter()
        self.counts: Counter[LatencyKey] = Counter()
        self.totals: dict[LatencyKey, float] = {}
        for run_id, run in after.items():
            old = before.get(run_id)
            if old is not None and list(_observations(old)) == list(_observations(run)):
                continue
            self._add(run, 1)
            if old is not None:
                self._add(old, -1)
        self._drop_zeros()

    @classmethod
    def of_removed(cls, gone: Iterable[RunRecord]) -> Deltas:
        """What deleting these runs' rows changes (retention): each one's contribution, taken back."""
        change = cls({}, {})
        for run in gone:
            change._add(run, -1)
        change._drop_zeros()
        return change

    def _drop_zeros(self) -> None:
        self.started = Counter({k: n for k, n in self.started.items() if n})
        unchanged = [k for k, n in self.counts.items() if n == 0 and self.totals.get(k, 0.0) == 0.0]
        for key in unchanged:
            del self.counts[key]
            self.totals.pop(key, None)

    def _add(self, run: RunRecord, sign: int) -> None:
        if run.started_at is not None:
            self.started[(run.tenant_id, run.kind)] += sign
        for metric, seconds in _observations(run):
            key = (run.kind, metric, bucket(metric, seconds))
            self.counts[key] += sign
            self.totals[key] = self.totals.get(key, 0.0) + sign * seconds


def apply(conn: Connection, before: Mapping[UUID, RunRecord], after: Mapping[UUID, RunRecord]) -> None:
    write(conn, Deltas(before, after))


def remove(conn: Connection, gone: Iterable[RunRecord]) -> None:
    """Take deleted runs out of the tables, so they equal what a rebuild of the remaining log gives."""
    write(conn, Deltas.of_removed(gone))


def write(conn: Connection, change: Deltas) -> None:
    if change.started:
        rows = [{"tenant_id": t, "kind": k, "count": n} for (t, k), n in sorted(change.started.items())]
        statement = insert(run_started)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["tenant_id", "kind"],
                set_={"count": run_started.c.count + statement.excluded["count"]},
            ),
            rows,
        )
    if change.counts:
        rows = [
            {
                "kind": kind,
                "metric": metric,
                "le": le,
                "count": n,
                "total": change.totals.get((kind, metric, le), 0.0),
            }
            for (kind, metric, le), n in sorted(change.counts.items())  # a fixed order: no deadlock
        ]
        statement = insert(run_latency)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["kind", "metric", "le"],
                set_={
                    "count": run_latency.c.count + statement.excluded["count"],
                    "total": run_latency.c.total + statement.excluded["total"],
                },
            ),
            rows,
        )
    # A count back at 0 is a row nobody needs; deleting it keeps a rebuild's tables equal to ours.
    if change.started:
        conn.execute(run_started.delete().where(run_started.c.count == 0))
    if change.counts:
        conn.execute(run_latency.delete().where(run_latency.c.count == 0))
