"""The pure due-time decision of recurring schedules (orchestrator.domain.schedule)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.cron import Cron, cron_problem
from orchestrator.domain.schedule import decide

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(minutes=2)
EVERY_5 = Cron("*/5 * * * *")


@pytest.mark.parametrize("expression", ["* * * * *", "*/15 9-17 * * 1-5", "0 0 1 1 *", " 5  4 * * * "])
def test_five_field_expressions_are_accepted(expression: str) -> None:
    assert cron_problem(expression) is None


@pytest.mark.parametrize("expression", ["", "* * * *", "* * * * * *", "61 * * * *", "@daily", "a b c d e"])
def test_anything_else_is_refused_with_a_reason(expression: str) -> None:
    assert cron_problem(expression)


def test_nothing_fires_before_the_slot() -> None:
    assert decide(EVERY_5, START, "skip", START - timedelta(seconds=1), GRACE) is None


def test_an_on_time_slot_fires_under_either_policy() -> None:
    for policy in ("skip", "catch_up_one"):
        decision = decide(EVERY_5, START, policy, START + timedelta(seconds=30), GRACE)
        assert decision is not None
        assert (decision.fire, decision.missed, decision.next_due) == (START, 0, START + timedelta(minutes=5))


def test_after_an_outage_skip_fires_nothing_and_catch_up_one_fires_the_latest_slot() -> None:
    now = START + timedelta(hours=1, minutes=3)  # 12:00 ... 13:00 were due, 13:00 is 3 minutes old
    skipped = decide(EVERY_5, START, "skip", now, GRACE)
    caught_up = decide(EVERY_5, START, "catch_up_one", now, GRACE)
    assert skipped is not None and caught_up is not None
    assert (skipped.fire, skipped.missed, skipped.last_missed) == (None, 13, START + timedelta(hours=1))
    assert (caught_up.fire, caught_up.missed) == (START + timedelta(hours=1), 12)
    assert caught_up.last_missed == START + timedelta(minutes=55)
    assert skipped.next_due == caught_up.next_due == START + timedelta(hours=1, minutes=5)


def test_next_after_is_strictly_after() -> None:
    assert EVERY_5.after(START) == START + timedelta(minutes=5)
    assert EVERY_5.after(START + timedelta(seconds=1)) == START + timedelta(minutes=5)


_CALENDARS = st.sampled_from(
    [Cron(e) for e in ("* * * * *", "*/5 * * * *", "7 * * * *", "0 */6 * * *", "30 9 * * 1-5")]
)


@settings(max_examples=200, deadline=None)
@given(
    calendar=_CALENDARS,
    policy=st.sampled_from(["skip", "catch_up_one"]),
    steps=st.lists(st.integers(min_value=0, max_value=6 * 3600), min_size=1, max_size=12),
)
def test_ticking_through_time_never_fires_a_slot_twice(calendar: Cron, policy: str, steps: list[int]) -> None:
    """Whatever the gaps between ticks: each slot is fired or missed at most once, fired slots only move
    forward, every due slot is accounted for, skip never fires a late slot, catch_up_one fires once a tick."""
    next_due = calendar.after(START)
    now = START
    fired: list[datetime] = []
    accounted = 0
    for step in steps:
        now += timedelta(seconds=step)
        decision = decide(calendar, next_due, policy, now, GRACE)  # type: ignore[arg-type]
        if decision is None:
            assert next_due > now
            continue
        due_count = 0
        slot = next_due
        while slot <= now:
            due_count += 1
            slot = calendar.after(slot)
        assert decision.missed + (decision.fire is not None) == due_count
        accounted += due_count
        if policy == "catch_up_one":
            assert decision.fire is not None
        if decision.fire is not None:
            assert next_due <= decision.fire <= now
            if policy == "skip":
                assert now - decision.fire <= GRACE
            assert not fired or decision.fire > fired[-1]
            fired.append(decision.fire)
        assert decision.next_due > now
        next_due = decision.next_due
    assert len(fired) == len(set(fired))
