"""Which steps a run shows: its latest attempt's, after the earlier ones that attempt resumed past."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from orchestrator.projections.steps import StepRecord
from orchestrator.readmodel.tree import current_steps

RUN = uuid.uuid4()
AT = datetime(2026, 1, 1, tzinfo=UTC)


def step(attempt: int, sequence: int) -> StepRecord:
    return StepRecord(RUN, attempt, sequence, "t", f"s{sequence}", "transform", "succeeded", AT)


def shown(steps: list[StepRecord], attempt: int) -> list[tuple[int, int]]:
    return [(s.attempt, s.sequence) for s in current_steps(steps, attempt)]


def test_a_resumed_attempt_keeps_the_steps_before_it() -> None:
    # Attempt 1 ran steps 1-2 and parked; attempt 2 resumed at step 3.
    assert shown([step(1, 1), step(1, 2), step(2, 3), step(2, 4)], 2) == [(1, 1), (1, 2), (2, 3), (2, 4)]


def test_an_attempt_that_starts_over_replaces_the_earlier_ones() -> None:
    assert shown([step(1, 1), step(1, 2), step(1, 3), step(2, 1)], 2) == [(2, 1)]


def test_a_step_redone_after_a_crash_is_shown_once_from_the_later_attempt() -> None:
    # Attempt 1 did 1-2 and crashed in 3; attempt 2 resumed at 3; attempt 3 resumed at 4.
    steps = [step(1, 1), step(1, 2), step(1, 3), step(2, 3), step(3, 4)]
    assert shown(steps, 3) == [(1, 1), (1, 2), (2, 3), (3, 4)]
    assert shown(steps[:4], 3) == [(1, 1), (1, 2), (2, 3)]  # attempt 3 has not recorded a step yet
