"""The runs projection's metric aggregates, as pure deltas: a run counts once as started, and files each
of its queue wait and duration under one bucket, however many times a batch rewrites it."""

from __future__ import annotations

import math
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from orchestrator.projections.run_metrics import DURATION_BUCKETS, QUEUE_WAIT_BUCKETS, Deltas, bucket
from orchestrator.projections.runs import RunRecord
from schemas.runs import RunStatus

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _run(**changes: object) -> RunRecord:
    base = RunRecord(
        id=uuid.uuid4(),
        tenant_id="t",
        kind="sleep",
        task=None,
        status=RunStatus.PENDING,
        parent_id=None,
        root_id=uuid.uuid4(),
        depth=0,
        attempt=0,
        max_attempts=3,
        created_at=T0,
        updated_at=T0,
        last_position=1,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_bucket_is_the_smallest_bound_at_or_above() -> None:
    assert bucket("queue_wait", 0.0) == QUEUE_WAIT_BUCKETS[0]
    assert [bucket("duration", b) for b in DURATION_BUCKETS] == list(DURATION_BUCKETS)
    assert bucket("duration", DURATION_BUCKETS[0] * 1.01) == DURATION_BUCKETS[1]
    assert bucket("duration", DURATION_BUCKETS[-1] + 1) == math.inf


def test_a_run_is_filed_once_as_it_starts_and_once_as_it_ends() -> None:
    pending = _run()
    running = replace(pending, status=RunStatus.RUNNING, started_at=T0 + timedelta(seconds=0.3))
    progressed = replace(running, progress_done=1)
    done = replace(progressed, status=RunStatus.SUCCEEDED, finished_at=T0 + timedelta(seconds=2.3))

    created = Deltas({}, {pending.id: pending})
    assert not created.started and not created.counts
    started = Deltas({pending.id: pending}, {running.id: running})
    assert started.started == {("t", "sleep"): 1}
    assert started.counts == {("sleep", "queue_wait", 0.5): 1}
    assert started.totals[("sleep", "queue_wait", 0.5)] == 0.3
    assert not Deltas({running.id: running}, {progressed.id: progressed}).counts, "progress files nothing"
    ended = Deltas({progressed.id: progressed}, {done.id: done})
    assert not ended.started, "already counted as started"
    assert ended.counts == {("sleep", "duration", 2.5): 1}
    # A batch that sees the whole life at once files the same as the steps one by one.
    whole = Deltas({}, {done.id: done})
    assert whole.started == {("t", "sleep"): 1}
    assert whole.counts == {("sleep", "queue_wait", 0.5): 1, ("sleep", "duration", 2.5): 1}


def test_a_run_canceled_before_it_started_is_not_started_and_files_nothing() -> None:
    pending = _run()
    canceled = replace(pending, status=RunStatus.CANCELED, finished_at=T0 + timedelta(seconds=1))
    change = Deltas({pending.id: pending}, {canceled.id: canceled})
    assert not change.started and not change.counts
