"""When a recurring schedule fires: a pure function of its calendar (its cron expression's slots), the next
slot it has not handled yet, its missed-run policy and the time now. Times are aware UTC datetimes.

A slot is on time while it is at most `grace` old; an older one was missed (the scheduler was down or far
behind). Both policies fire an on-time slot. With `skip` missed slots are only counted; with `catch_up_one`
one run stands for the whole backlog: the latest due slot fires, whatever its age. Either way at most one
slot fires per decision and the next due slot is the first one after `now`, so no slot ever fires twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

MissedPolicy = Literal["skip", "catch_up_one"]

# Counting a long backlog slot by slot (a per-minute schedule down for a year) is bounded: past this many
# the count is a lower bound, which is all the ScheduleSkipped event needs to say.
MAX_COUNTED = 10_000


class Calendar(Protocol):
    """The slots of a schedule (orchestrator.cron.Cron for a cron expression)."""

    def after(self, moment: datetime) -> datetime: ...  # first slot strictly after
    def before(self, moment: datetime) -> datetime: ...  # last slot strictly before
    def at_or_before(self, moment: datetime) -> datetime: ...


@dataclass(frozen=True)
class Decision:
    fire: datetime | None  # the slot to fire now, if any
    missed: int  # due slots not fired
    last_missed: datetime | None  # the latest of them
    next_due: datetime  # the first slot after now: where the schedule waits next


def decide(
    calendar: Calendar, next_due: datetime, policy: MissedPolicy, now: datetime, grace: timedelta
) -> Decision | None:
    """What to do with a schedule waiting at `next_due` (one of its slots); None when nothing is due yet."""
    if next_due > now:
        return None
    latest = calendar.at_or_before(now)
    due, slot = 1, next_due  # next_due itself, then every slot up to the latest
    while due < MAX_COUNTED and (slot := calendar.after(slot)) <= latest:
        due += 1
    fire = latest if now - latest <= grace or policy == "catch_up_one" else None
    missed = due - (1 if fire is not None else 0)
    last_missed: datetime | None = None
    if missed:
        # When the latest slot fired, the one before it is the latest missed (there were at least two).
        last_missed = latest if fire is None else calendar.before(latest)
    return Decision(fire, missed, last_missed, calendar.after(now))
