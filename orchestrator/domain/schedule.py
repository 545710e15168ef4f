"""When a recurring schedule fires: a pure function of its cron expression, the next slot it has not handled
yet, its missed-run policy and the time now. All times are aware UTC datetimes; cron fields are read in UTC.

A slot is on time while it is at most `grace` old; an older one was missed (the scheduler was down or far
behind). Both policies fire an on-time slot. With `skip` missed slots are only counted; with `catch_up_one`
one run stands for the whole backlog: the latest due slot fires, whatever its age. Either way at most one
slot fires per decision and the next due slot is the first one after `now`, so no slot ever fires twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from cronsim import CronSim, CronSimError

MissedPolicy = Literal["skip", "catch_up_one"]
MISSED_POLICIES: tuple[MissedPolicy, ...] = ("skip", "catch_up_one")

# Counting a long backlog slot by slot (a per-minute schedule down for a year) is bounded: past this many
# the count is a lower bound, which is all the ScheduleSkipped event needs to say.
MAX_COUNTED = 10_000


def cron_problem(expression: str) -> str | None:
    """Why the expression is not a 5-field cron expression, or None when it is one."""
    if len(expression.split()) != 5:
        return "a cron expression has 5 fields: minute hour day-of-month month day-of-week"
    try:
        CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        return f"invalid cron expression: {exc}"
    return None


def next_after(expression: str, moment: datetime) -> datetime:
    """The first slot strictly after `moment`."""
    slot: datetime = next(CronSim(expression, moment.astimezone(UTC)))
    return slot.astimezone(UTC)


@dataclass(frozen=True)
class Decision:
    fire: datetime | None  # the slot to fire now, if any
    missed: int  # due slots not fired
    last_missed: datetime | None  # the latest of them
    next_due: datetime  # the first slot after now: where the schedule waits next


def latest_at_or_before(expression: str, moment: datetime) -> datetime:
    """The last slot at or before `moment` (slots are whole minutes; cronsim's reverse step is strict)."""
    slot: datetime = next(CronSim(expression, moment.astimezone(UTC) + timedelta(seconds=1), reverse=True))
    return slot.astimezone(UTC)


def decide(
    expression: str, next_due: datetime, policy: MissedPolicy, now: datetime, grace: timedelta
) -> Decision | None:
    """What to do with a schedule waiting at `next_due` (one of its slots); None when nothing is due yet."""
    if next_due > now:
        return None
    latest = latest_at_or_before(expression, now)
    due = 1  # next_due itself
    slots = CronSim(expression, next_due.astimezone(UTC))
    while due < MAX_COUNTED and next(slots).astimezone(UTC) <= latest:
        due += 1
    fire = latest if now - latest <= grace or policy == "catch_up_one" else None
    missed = due - (1 if fire is not None else 0)
    last_missed: datetime | None = None
    if missed:
        # When the latest slot fired, the one before it is the latest missed (there were at least two).
        last_missed = (
            latest if fire is None else next(CronSim(expression, latest, reverse=True)).astimezone(UTC)
        )
    return Decision(fire, missed, last_missed, next_after(expression, now))
