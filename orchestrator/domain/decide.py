"""decide(state, command) -> events: every rule about what may happen to a run, with no I/O."""

from __future__ import annotations

from dataclasses import asdict

from orchestrator.domain.commands import (
    Cancel,
    Command,
    ConfirmCancel,
    CreateRun,
    Fail,
    FailAttempt,
    FinishStep,
    ForceCancel,
    LoseAttempt,
    ParkAttempt,
    RecordCheckpoint,
    RecordUsage,
    ReportProgress,
    Resume,
    StartAttempt,
    StartStep,
    Succeed,
)
from orchestrator.domain.errors import IllegalTransition, RunAlreadyExists, StaleAttempt
from orchestrator.domain.lifecycle import is_terminal
from orchestrator.domain.state import SHUTDOWN_REASON, RunState
from schemas.events import (
    AttemptFailed,
    AttemptLost,
    CancelRequested,
    CheckpointRecorded,
    Event,
    ProgressReported,
    RunCanceled,
    RunCreated,
    RunFailed,
    RunParked,
    RunResumed,
    RunStarted,
    RunSucceeded,
    StepFinished,
    StepStarted,
    UsageRecorded,
)
from schemas.runs import ErrorCode, RunStatus

AttemptCommand = (
    ReportProgress
    | StartStep
    | FinishStep
    | RecordUsage
    | RecordCheckpoint
    | Succeed
    | Fail
    | FailAttempt
    | LoseAttempt
    | ParkAttempt
    | ConfirmCancel
)


def decide(state: RunState, command: Command) -> list[Event]:
    """Return the events that `command` produces on `state`, or raise a DomainError."""
    if isinstance(command, CreateRun):
        return _create(state, command)
    if not state.exists or state.status is None:
        raise IllegalTransition("run does not exist")
    if isinstance(command, Cancel) and state.status is RunStatus.CANCELED:
        return []  # a client retrying its cancel is not told it failed: the run is what it asked for
    if is_terminal(state.status):
        raise IllegalTransition(f"run is already {state.status.value}")
    if isinstance(command, Cancel):
        return _cancel(state, command)
    if isinstance(command, StartAttempt):
        return _start(state, command)
    if isinstance(command, Resume):
        return _resume(state, command)
    if isinstance(command, ForceCancel):
        if not state.cancel_requested:
            raise IllegalTransition("no cancel was requested")
        return [RunCanceled(attempt=state.attempt, reason=command.reason)]
    _require_current_attempt(state, command.attempt)
    return _attempt_events(state, command)


def _create(state: RunState, command: CreateRun) -> list[Event]:
    if state.exists:
        raise RunAlreadyExists("run already exists")
    return [RunCreated(**{**asdict(command), "root_id": command.root_id or command.run_id})]


def _start(state: RunState, command: StartAttempt) -> list[Event]:
    # Only the next attempt may start, and only when none is active: a duplicate or late
    # delivery of an older message loses here, which is what makes delivery idempotent.
    if state.parked_on is not None:
        raise StaleAttempt(f"the run waits for the children of step {state.parked_on!r}")
    if state.attempt_active or command.attempt != state.attempt + 1:
        raise StaleAttempt(f"attempt {command.attempt} cannot start; current attempt is {state.attempt}")
    if command.attempt > state.max_attempts:
        raise IllegalTransition("no attempts left")
    return [RunStarted(attempt=command.attempt, worker=command.worker)]


def _cancel(state: RunState, command: Cancel) -> list[Event]:
    if state.status == RunStatus.PENDING or not state.attempt_active:
        # Nothing is executing (never started, or waiting for a retry): cancel at once.
        return [RunCanceled(attempt=state.attempt, reason=command.reason)]
    if state.cancel_requested:
        return []
    return [CancelRequested(reason=command.reason)]


def _require_current_attempt(state: RunState, attempt: int) -> None:
    if state.status != RunStatus.RUNNING or not state.attempt_active or attempt != state.attempt:
        raise StaleAttempt(f"attempt {attempt} is not the active attempt")


# Commands that a running attempt reports and that become one event of the same fields, as they are.
RECORDED_AS: dict[type, type[Event]] = {
    ReportProgress: ProgressReported,
    StartStep: StepStarted,
    FinishStep: StepFinished,
    RecordUsage: UsageRecorded,
    RecordCheckpoint: CheckpointRecorded,
    Succeed: RunSucceeded,
    Fail: RunFailed,
}


def _attempt_events(state: RunState, command: AttemptCommand) -> list[Event]:
    event_type = RECORDED_AS.get(type(command))
    if event_type is not None:
        return [event_type(**asdict(command))]
    match command:
        case FailAttempt():
            return _fail_attempt(state, command)
        case LoseAttempt():
            return _lose_attempt(state, command)
        case ParkAttempt():
            return _park(state, command)
        case ConfirmCancel():
            if not state.cancel_requested:
                raise IllegalTransition("no cancel was requested")
            return [RunCanceled(attempt=command.attempt, reason="cancel requested")]
    raise IllegalTransition(f"unknown command {type(command).__name__}")  # pragma: no cover


def _fail_attempt(state: RunState, command: FailAttempt) -> list[Event]:
    if state.cancel_requested:
        return [RunCanceled(attempt=command.attempt, reason="cancel requested")]
    if command.attempt >= state.max_attempts:
        return [
            RunFailed(
                attempt=command.attempt,
                error_code=command.error_code,
                error=command.error,
                reason="max_attempts",
            )
        ]
    return [
        AttemptFailed(
            attempt=command.attempt,
            error_code=command.error_code,
            error=command.error,
            retry_at=command.retry_at,
        )
    ]


def _lose_attempt(state: RunState, command: LoseAttempt) -> list[Event]:
    if state.cancel_requested:
        return [
            AttemptLost(attempt=command.attempt, reason=command.reason),
            RunCanceled(attempt=command.attempt, reason="cancel requested"),
        ]
    if command.attempt >= state.max_attempts and command.reason != SHUTDOWN_REASON:
        return [
            AttemptLost(attempt=command.attempt, reason=command.reason),
            RunFailed(
                attempt=command.attempt,
                error_code=ErrorCode.INTERNAL_ERROR,
                error=f"worker lost {command.attempt} times",
                reason=command.reason,
            ),
        ]
    return [AttemptLost(attempt=command.attempt, reason=command.reason, retry_at=command.retry_at)]


def _park(state: RunState, command: ParkAttempt) -> list[Event]:
    if command.unfinished < 0:
        raise IllegalTransition("the unfinished children were not counted")  # pragma: no cover
    if state.cancel_requested:
        return [RunCanceled(attempt=command.attempt, reason="cancel requested")]
    parked = RunParked(attempt=command.attempt, step_key=command.step_key, awaiting=list(command.awaiting))
    if command.unfinished == 0:
        # The children all ended before the parent's lock was taken: none of them will resume it, so it
        # resumes itself, and the next attempt finds them finished.
        return [parked, RunResumed(attempt=command.attempt, step_key=command.step_key)]
    return [parked]


def _resume(state: RunState, command: Resume) -> list[Event]:
    if state.parked_on != command.step_key:
        raise IllegalTransition(f"the run is not waiting on step {command.step_key!r}")
    return [RunResumed(attempt=state.attempt, step_key=command.step_key)]
