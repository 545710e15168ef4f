"""Property tests: any command sequence keeps a run legal, and folding is deterministic."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.domain.commands import (
    Cancel,
    ConfirmCancel,
    CreateRun,
    Fail,
    FailAttempt,
    LoseAttempt,
    ReportProgress,
    StartAttempt,
    Succeed,
)
from orchestrator.domain.decide import decide
from orchestrator.domain.errors import DomainError
from orchestrator.domain.lifecycle import TERMINAL, can_transition
from orchestrator.domain.state import RunState, fold
from schemas.events import TERMINAL_EVENT_TYPES, Event
from schemas.runs import ErrorCode

NOW = datetime(2026, 1, 1, tzinfo=UTC)
attempts = st.integers(min_value=0, max_value=4)
commands = st.one_of(
    st.builds(StartAttempt, attempts),
    st.builds(ReportProgress, attempts, st.integers(0, 10)),
    st.builds(Succeed, attempts),
    st.builds(Fail, attempts, st.sampled_from(list(ErrorCode)), st.just("boom")),
    st.builds(FailAttempt, attempts, st.sampled_from(list(ErrorCode)), st.just("flaky"), st.just(NOW)),
    st.builds(LoseAttempt, attempts, st.just("worker_lost"), st.just(NOW)),
    st.builds(Cancel),
    st.builds(ConfirmCancel, attempts),
)


def _run(sequence: list[object]) -> tuple[RunState, list[Event]]:
    create = CreateRun(run_id=uuid.uuid4(), tenant_id="t", kind="sleep", max_attempts=3)
    log: list[Event] = decide(RunState(), create)
    state = fold(log)
    for command in sequence:
        before = state
        try:
            new = decide(state, command)  # type: ignore[arg-type]
        except DomainError:
            assert fold(log) == state  # a refused command changes nothing
            continue
        state = fold(new, state)
        log.extend(new)
        if before.status != state.status:
            assert before.status is not None and state.status is not None
            assert can_transition(before.status, state.status)
    return state, log


@settings(max_examples=400, deadline=None)
@given(st.lists(commands, max_size=30))
def test_any_command_sequence_keeps_the_run_legal(sequence: list[object]) -> None:
    state, log = _run(sequence)
    terminal_positions = [i for i, e in enumerate(log) if e.type in TERMINAL_EVENT_TYPES]
    assert len(terminal_positions) <= 1
    if terminal_positions:
        assert terminal_positions[0] == len(log) - 1, "no event after a terminal event"
        assert state.status in TERMINAL
    assert state.attempt <= state.max_attempts
    assert sum(e.type == "RunStarted" for e in log) == state.attempt


@settings(max_examples=200, deadline=None)
@given(st.lists(commands, max_size=30))
def test_folding_twice_gives_the_same_state(sequence: list[object]) -> None:
    state, log = _run(sequence)
    assert fold(log) == fold(log) == state
