"""Every status x event pair of the lifecycle table, and the decisions built on it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from orchestrator.domain.commands import (
    Cancel,
    ConfirmCancel,
    CreateRun,
    Fail,
    FailAttempt,
    ForceCancel,
    LoseAttempt,
    ReportProgress,
    StartAttempt,
    Succeed,
)
from orchestrator.domain.decide import decide
from orchestrator.domain.errors import IllegalTransition, RunAlreadyExists, StaleAttempt
from orchestrator.domain.lifecycle import STATUS_AFTER_EVENT, TERMINAL, TRANSITIONS, can_transition
from orchestrator.domain.state import CorruptStream, RunState, evolve, fold
from schemas.events import (
    AttemptFailed,
    AttemptLost,
    CancelRequested,
    RunCanceled,
    RunCreated,
    RunFailed,
    RunStarted,
    RunSucceeded,
)
from schemas.runs import ErrorCode, RunStatus

NOW = datetime(2026, 1, 1, tzinfo=UTC)

ALLOWED = {
    (RunStatus.PENDING, RunStatus.RUNNING),
    (RunStatus.PENDING, RunStatus.FAILED),
    (RunStatus.PENDING, RunStatus.CANCELED),
    (RunStatus.RUNNING, RunStatus.SUCCEEDED),
    (RunStatus.RUNNING, RunStatus.FAILED),
    (RunStatus.RUNNING, RunStatus.CANCELED),
}


@pytest.mark.parametrize("current", list(RunStatus))
@pytest.mark.parametrize("target", list(RunStatus))
def test_transition_table(current: RunStatus, target: RunStatus) -> None:
    assert can_transition(current, target) == ((current, target) in ALLOWED)


def test_terminal_set() -> None:
    assert {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELED} == TERMINAL
    assert all(not TRANSITIONS[s] for s in TERMINAL)


def created() -> RunState:
    return fold([RunCreated(run_id=uuid.uuid4(), tenant_id="t", kind="sleep", max_attempts=3)])


def running(attempt: int = 1) -> RunState:
    state = created()
    for n in range(1, attempt):
        state = fold(
            [
                RunStarted(attempt=n),
                AttemptFailed(attempt=n, error_code="internal_error", error="x", retry_at=NOW),
            ],
            state,
        )
    return fold([RunStarted(attempt=attempt)], state)


def in_status(status: RunStatus) -> RunState:
    events = {
        RunStatus.PENDING: [],
        RunStatus.RUNNING: [RunStarted(attempt=1)],
        RunStatus.SUCCEEDED: [RunStarted(attempt=1), RunSucceeded(attempt=1)],
        RunStatus.FAILED: [
            RunStarted(attempt=1),
            RunFailed(attempt=1, error_code="internal_error", error="x"),
        ],
        RunStatus.CANCELED: [RunCanceled(attempt=0)],
    }[status]
    return fold(events, created())


STATUS_EVENTS = {
    "RunStarted": RunStarted(attempt=1),
    "RunSucceeded": RunSucceeded(attempt=1),
    "RunFailed": RunFailed(attempt=1, error_code=ErrorCode.INTERNAL_ERROR, error="x"),
    "RunCanceled": RunCanceled(attempt=1),
}


@pytest.mark.parametrize("status", list(RunStatus))
@pytest.mark.parametrize("event_type", sorted(STATUS_EVENTS))
def test_every_status_event_pair(status: RunStatus, event_type: str) -> None:
    state = in_status(status)
    target = STATUS_AFTER_EVENT[event_type]
    if target == status or can_transition(status, target):
        assert evolve(state, STATUS_EVENTS[event_type]).status == target
    else:
        with pytest.raises(CorruptStream):
            evolve(state, STATUS_EVENTS[event_type])


@pytest.mark.parametrize("status", sorted(TERMINAL))
@pytest.mark.parametrize(
    "command",
    [Cancel(), StartAttempt(2), Succeed(1), Fail(1, ErrorCode.INTERNAL_ERROR, "x"), ReportProgress(1, 1)],
)
def test_nothing_leaves_a_terminal_state(status: RunStatus, command: object) -> None:
    if status is RunStatus.CANCELED and isinstance(command, Cancel):
        assert decide(in_status(status), command) == []  # a repeated cancel is answered, and changes nothing
        return
    with pytest.raises(IllegalTransition):
        decide(in_status(status), command)  # type: ignore[arg-type]


def test_create_twice_is_refused() -> None:
    with pytest.raises(RunAlreadyExists):
        decide(created(), CreateRun(run_id=uuid.uuid4(), tenant_id="t", kind="sleep"))


def test_only_the_next_attempt_starts() -> None:
    assert decide(created(), StartAttempt(1)) == [RunStarted(attempt=1)]
    for stale in (0, 2, 5):
        with pytest.raises(StaleAttempt):
            decide(created(), StartAttempt(stale))
    with pytest.raises(StaleAttempt):  # a duplicate delivery of the running attempt
        decide(running(1), StartAttempt(1))


def test_writes_from_an_old_attempt_are_fenced() -> None:
    state = running(2)
    with pytest.raises(StaleAttempt):
        decide(state, Succeed(1))
    assert decide(state, Succeed(2)) == [RunSucceeded(attempt=2)]


def test_cancel_pending_is_immediate_and_running_is_requested() -> None:
    assert decide(created(), Cancel()) == [RunCanceled(attempt=0)]
    assert decide(running(), Cancel()) == [CancelRequested()]
    requested = fold([CancelRequested()], running())
    assert decide(requested, Cancel()) == []
    assert decide(requested, ConfirmCancel(1)) == [RunCanceled(attempt=1, reason="cancel requested")]
    with pytest.raises(IllegalTransition):
        decide(running(), ConfirmCancel(1))


def test_a_cancel_past_its_grace_is_forced() -> None:
    with pytest.raises(IllegalTransition):
        decide(running(), ForceCancel())
    requested = fold([CancelRequested()], running())
    assert decide(requested, ForceCancel()) == [RunCanceled(attempt=1, reason="cancel_grace_expired")]


def test_transient_failures_retry_until_max_attempts() -> None:
    events = decide(running(1), FailAttempt(1, ErrorCode.SERVICE_UNAVAILABLE, "x", NOW))
    assert events == [
        AttemptFailed(attempt=1, error_code=ErrorCode.SERVICE_UNAVAILABLE, error="x", retry_at=NOW)
    ]
    last = decide(running(3), FailAttempt(3, ErrorCode.SERVICE_UNAVAILABLE, "x", NOW))
    assert [type(e) for e in last] == [RunFailed]


def test_lost_attempts_end_in_internal_error_after_max() -> None:
    assert decide(running(1), LoseAttempt(1, "worker_lost", NOW)) == [
        AttemptLost(attempt=1, reason="worker_lost", retry_at=NOW)
    ]
    final = decide(running(3), LoseAttempt(3, "worker_lost", NOW))
    assert isinstance(final[-1], RunFailed)
    assert final[-1].error_code == ErrorCode.INTERNAL_ERROR
    assert final[-1].reason == "worker_lost"


def test_a_shutdown_does_not_use_up_an_attempt() -> None:
    last = running(3)
    events = decide(last, LoseAttempt(3, "worker_shutdown", NOW))
    assert events == [AttemptLost(attempt=3, reason="worker_shutdown", retry_at=NOW)]
    after = fold(events, last)
    assert after.max_attempts == 4
    assert decide(after, StartAttempt(4)) == [RunStarted(attempt=4)]


def test_a_retry_waiting_run_cancels_at_once() -> None:
    waiting = fold(
        [AttemptFailed(attempt=1, error_code="internal_error", error="x", retry_at=NOW)], running(1)
    )
    assert decide(waiting, Cancel()) == [RunCanceled(attempt=1)]
