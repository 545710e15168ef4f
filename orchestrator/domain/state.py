"""A run's write-side state and the fold that rebuilds it from its events."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID

from orchestrator.domain.lifecycle import STATUS_AFTER_EVENT, can_transition
from schemas.events import (
    AttemptFailed,
    AttemptLost,
    CancelRequested,
    CheckpointRecorded,
    Event,
    RunCanceled,
    RunCreated,
    RunFailed,
    RunParked,
    RunResumed,
    RunStarted,
    RunSucceeded,
)
from schemas.runs import RunStatus


@dataclass(frozen=True)
class RunState:
    """What decisions need to know about a run; `version` is the number of events folded."""

    run_id: UUID | None = None
    tenant_id: str = ""
    kind: str = ""
    status: RunStatus | None = None
    version: int = 0
    attempt: int = 0
    attempt_active: bool = False
    max_attempts: int = 3
    cancel_requested: bool = False
    parent_id: UUID | None = None
    root_id: UUID | None = None
    depth: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    # Creation attributes (a taxonomy build's field and source): what the job works on, beside its params.
    attributes: dict[str, Any] = field(default_factory=dict)
    # The latest checkpoint of any attempt: where a retry resumes. None until a job records one.
    checkpoint: dict[str, Any] | None = None
    priority: int = 0  # a retry's dispatch keeps the run's place within its tenant
    # Parked (waiting for child runs) on this step, and the children it waits for; None when not parked.
    parked_on: str | None = None
    awaiting: tuple[UUID, ...] = ()

    @property
    def exists(self) -> bool:
        return self.status is not None


SHUTDOWN_REASON = "worker_shutdown"


def attempts_granted(event: AttemptLost) -> int:
    """Attempts a lost attempt gives back to the run: one when a deploy (a worker shutting down), not the
    run, ended it, so a rolling restart never uses up a run's allowance. The read models count with it too."""
    return 1 if event.reason == SHUTDOWN_REASON else 0


class CorruptStream(Exception):
    """The stored events break the lifecycle; only a bug or manual SQL can cause this."""


def evolve(state: RunState, event: Event) -> RunState:
    """Apply one event. Pure: the same state and event always give the same result."""
    target = STATUS_AFTER_EVENT.get(event.type)
    # A new attempt of a running run (after a retry) keeps the status: that is not a transition.
    moves = target is not None and state.status is not None and target != state.status
    if moves and state.status is not None and target is not None and not can_transition(state.status, target):
        raise CorruptStream(f"{event.type} not allowed from {state.status}")
    version = state.version + 1
    match event:
        case RunCreated():
            if state.exists:
                raise CorruptStream("RunCreated on an existing run")
            return RunState(
                run_id=event.run_id,
                tenant_id=event.tenant_id,
                kind=event.kind,
                status=RunStatus.PENDING,
                version=version,
                max_attempts=event.max_attempts,
                parent_id=event.parent_id,
                root_id=event.root_id or event.run_id,
                depth=event.depth,
                params=event.params,
                attributes=event.attributes,
                priority=event.priority,
            )
        case RunStarted():
            return replace(
                state, status=RunStatus.RUNNING, version=version, attempt=event.attempt, attempt_active=True
            )
        case AttemptLost():
            allowance = state.max_attempts + attempts_granted(event)
            return replace(state, version=version, attempt_active=False, max_attempts=allowance)
        case AttemptFailed():
            return replace(state, version=version, attempt_active=False)
        case RunParked():
            # Waiting is not an attempt spent: the next one is granted, as a shutdown's is.
            return replace(
                state,
                version=version,
                attempt_active=False,
                max_attempts=state.max_attempts + 1,
                parked_on=event.step_key,
                awaiting=tuple(event.awaiting),
            )
        case RunResumed():
            return replace(state, version=version, parked_on=None, awaiting=())
        case CancelRequested():
            return replace(state, version=version, cancel_requested=True)
        case CheckpointRecorded():
            return replace(state, version=version, checkpoint=event.data)
        case RunSucceeded() | RunFailed() | RunCanceled():
            return replace(state, status=target, version=version, attempt_active=False)
        case _:
            return replace(state, version=version)


def fold(events: Iterable[Event], state: RunState | None = None) -> RunState:
    current = state or RunState()
    for event in events:
        current = evolve(current, event)
    return current
