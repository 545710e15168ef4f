"""The projections as pure folds, on literal events: no database, milliseconds."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from orchestrator.domain.state import SHUTDOWN_REASON
from orchestrator.projections import counts, runs, steps
from orchestrator.store.events import RecordedEvent
from schemas.events import (
    EVENT_TYPES,
    AttemptLost,
    CancelRequested,
    Event,
    ProgressReported,
    RunCreated,
    RunStarted,
    RunSucceeded,
    StepFinished,
    StepStarted,
    UsageRecorded,
    event_to_stored,
)
from schemas.runs import RunStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def recorded(stream: list[Event], run_id: uuid.UUID | None = None) -> list[RecordedEvent]:
    run_id = run_id or uuid.uuid4()
    return [
        RecordedEvent(
            position=100 + i,
            event_id=uuid.uuid4(),
            stream_id=run_id,
            version=i + 1,
            tenant_id="t",
            type=event.type,
            data=event_to_stored(event),
            metadata={},
            recorded_at=T0 + timedelta(seconds=i),
        )
        for i, event in enumerate(stream)
    ]


def created(run_id: uuid.UUID) -> RunCreated:
    return RunCreated(
        run_id=run_id, tenant_id="t", kind="sleep", attributes={"field_id": "f"}, max_attempts=2
    )


def test_every_event_type_has_a_runs_handler() -> None:
    """A new event type must say what it does to a run row, or this fails."""
    handled = {cls.type for cls in runs.HANDLERS} | {RunCreated.type}
    assert handled == set(EVENT_TYPES)


def test_the_fold_of_a_finished_run() -> None:
    run_id = uuid.uuid4()
    stream = recorded(
        [
            created(run_id),
            RunStarted(attempt=1, worker="w"),
            ProgressReported(attempt=1, done=1, total=2, counts={"record_count": 7}),
            ProgressReported(attempt=1, done=2, total=2, counts={"node_count": 3}),
            UsageRecorded(attempt=1, input_tokens=5, cost="0.0000001"),
            UsageRecorded(attempt=1, input_tokens=1, cost="0.5"),
            RunSucceeded(attempt=1, result={"line_count": 4}),
        ],
        run_id,
    )
    run = runs.fold(stream)
    assert run is not None
    assert run.status is RunStatus.SUCCEEDED
    assert (run.attempt, run.progress_done, run.progress_total) == (1, 2, 2)
    assert run.counts == {"record_count": 7, "node_count": 3}
    assert (run.count("record_count"), run.count("line_count"), run.count("missing")) == (7, 4, 0)
    assert (run.usage_input_tokens, run.usage_cost) == (6, Decimal("0.5000001"))
    assert (run.started_at, run.finished_at) == (T0 + timedelta(seconds=1), T0 + timedelta(seconds=6))
    assert (run.event_count, run.last_position) == (7, 106)
    assert run.attributes == {"field_id": "f"}


def test_a_shutdown_gives_the_attempt_back_in_the_read_model_too() -> None:
    run_id = uuid.uuid4()
    lost = AttemptLost(attempt=1, reason=SHUTDOWN_REASON, retry_at=T0)
    run = runs.fold(recorded([created(run_id), RunStarted(attempt=1), lost], run_id))
    assert run is not None and run.max_attempts == 3 and run.retry_at == T0
    other = runs.fold(
        recorded([created(run_id), RunStarted(attempt=1), lost.model_copy(update={"reason": "x"})])
    )
    assert other is not None and other.max_attempts == 2


def test_events_before_creation_are_ignored_and_cancel_is_recorded() -> None:
    run_id = uuid.uuid4()
    assert runs.fold(recorded([RunStarted(attempt=1)], run_id)) is None
    run = runs.fold(recorded([created(run_id), RunStarted(attempt=1), CancelRequested()], run_id))
    assert run is not None and run.cancel_requested and run.status is RunStatus.RUNNING


def test_a_record_round_trips_through_its_row() -> None:
    run = runs.fold(recorded([created(uuid.uuid4())]))
    assert run is not None
    assert runs.RunRecord.from_row(run.as_row()) == run


def test_steps_fold_by_attempt_and_sequence() -> None:
    run_id = uuid.uuid4()
    stream = recorded(
        [
            created(run_id),
            RunStarted(attempt=1),
            StepStarted(attempt=1, step_key="a", sequence=1, input={"x": 1}),
            StepFinished(attempt=1, step_key="a", sequence=1, output={"y": 2}, duration_ms=5),
            StepStarted(attempt=1, step_key="b", sequence=2),
        ],
        run_id,
    )
    folded = steps.fold(stream)
    assert [(s.step_key, s.status) for s in folded] == [("a", "succeeded"), ("b", "running")]
    assert folded[0].output == {"y": 2} and folded[0].completed_at == T0 + timedelta(seconds=3)
    assert steps.key(stream[0]) is None and steps.key(stream[2]) == (run_id, 1, 1)


def test_run_counts_move_a_run_from_its_old_status_to_its_new_one() -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    pending = runs.fold(recorded([created(first)], first))
    assert pending is not None
    finished = runs.fold(recorded([created(first), RunStarted(attempt=1), RunSucceeded(attempt=1)], first))
    fresh = runs.fold(recorded([created(second)], second))
    assert finished is not None and fresh is not None
    # A batch that finished one known run and created another: -1 pending +1 succeeded, +1 pending.
    change = counts.deltas({first: pending}, {first: finished, second: fresh})
    assert change == {("t", "sleep", "succeeded", True): 1}
    assert counts.deltas({}, {second: fresh}) == {("t", "sleep", "pending", True): 1}
    assert counts.deltas({first: finished}, {first: finished}) == {}


def test_priority_and_not_before_come_from_run_created_and_default_for_older_runs() -> None:
    run_id = uuid.uuid4()
    later = created(run_id).model_copy(update={"priority": 7, "not_before": T0 + timedelta(hours=1)})
    run = runs.fold(recorded([later, RunStarted(attempt=1)], run_id))
    assert run is not None and (run.priority, run.not_before) == (7, T0 + timedelta(hours=1))
    (old,) = recorded([created(run_id)], run_id)
    stored = {k: v for k, v in old.data.items() if k not in ("priority", "not_before")}
    before = runs.fold([dataclasses.replace(old, data=stored)])  # stored before runs had either field
    assert before is not None and (before.priority, before.not_before) == (0, None)
