"""A workflow waiting for its children parks (its attempt ends, no worker held) and is resumed when they end:
the decisions and the fold, with no I/O."""

from __future__ import annotations

import uuid

import pytest

from orchestrator.domain.commands import Cancel, ParkAttempt, Resume, StartAttempt, Succeed
from orchestrator.domain.decide import decide
from orchestrator.domain.errors import IllegalTransition, StaleAttempt
from orchestrator.domain.lifecycle import WAITS_FOR
from orchestrator.domain.state import RunState, fold
from schemas.events import CancelRequested, Event, RunCanceled, RunCreated, RunParked, RunResumed, RunStarted
from schemas.runs import RunStatus

CHILDREN = (uuid.uuid4(), uuid.uuid4())


def running(attempt: int = 1) -> RunState:
    state = fold([RunCreated(run_id=uuid.uuid4(), tenant_id="t", kind="workflow", max_attempts=1)])
    return fold([RunStarted(attempt=attempt)], state)


def park(state: RunState, unfinished: int = 2) -> list[Event]:
    return list(decide(state, ParkAttempt(state.attempt, "wait", CHILDREN, unfinished)))


def test_parking_ends_the_attempt_and_grants_the_next_one() -> None:
    state = running()
    events = park(state)
    assert events == [RunParked(attempt=1, step_key="wait", awaiting=list(CHILDREN))]
    parked = fold(events, state)
    assert parked.status is RunStatus.RUNNING and not parked.attempt_active
    assert parked.parked_on == "wait" and parked.awaiting == CHILDREN
    # max_attempts was 1: waiting does not spend the run's allowance, so attempt 2 may still start later.
    assert parked.max_attempts == 2
    assert WAITS_FOR[RunParked.type] == RunResumed.type


def test_a_parked_run_starts_no_attempt_until_resumed() -> None:
    parked = fold(park(running()), running())
    with pytest.raises(StaleAttempt):
        decide(parked, StartAttempt(attempt=2))
    resumed = fold(decide(parked, Resume("wait")), parked)
    assert resumed.parked_on is None and resumed.awaiting == ()
    assert decide(resumed, StartAttempt(attempt=2)) == [RunStarted(attempt=2)]


def test_children_that_ended_before_the_park_resume_it_at_once() -> None:
    assert park(running(), unfinished=0) == [
        RunParked(attempt=1, step_key="wait", awaiting=list(CHILDREN)),
        RunResumed(attempt=1, step_key="wait"),
    ]


def test_resume_names_the_step_the_run_waits_on() -> None:
    parked = fold(park(running()), running())
    with pytest.raises(IllegalTransition):
        decide(parked, Resume("another"))
    with pytest.raises(IllegalTransition):
        decide(running(), Resume("wait"))  # not parked at all


def test_only_the_active_attempt_parks_and_a_requested_cancel_wins() -> None:
    state = running()
    with pytest.raises(StaleAttempt):
        decide(state, ParkAttempt(2, "wait", CHILDREN, 1))
    canceling = fold([CancelRequested()], state)
    assert park(canceling) == [RunCanceled(attempt=1, reason="cancel requested")]


def test_a_parked_run_is_canceled_at_once_and_writes_no_more() -> None:
    parked = fold(park(running()), running())
    events = decide(parked, Cancel())
    assert [type(e) for e in events] == [RunCanceled]
    canceled = fold(events, parked)
    with pytest.raises(IllegalTransition):
        decide(canceled, Resume("wait"))
    with pytest.raises(StaleAttempt):
        decide(parked, Succeed(attempt=1))  # the parked attempt is over: it cannot end the run
