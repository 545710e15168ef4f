"""5-field cron expressions read in UTC, on cronsim: the calendar the pure schedule decision
(orchestrator.domain.schedule) steps through. The domain takes any `Calendar`; this is the one we run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cronsim import CronSim, CronSimError


def cron_problem(expression: str) -> str | None:
    """Why the expression is not a 5-field cron expression, or None when it is one."""
    if len(expression.split()) != 5:
        return "a cron expression has 5 fields: minute hour day-of-month month day-of-week"
    try:
        CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        return f"invalid cron expression: {exc}"
    return None


class Cron:
    """Slots of one valid expression (check it with `cron_problem` first). Slots are whole UTC minutes."""

    def __init__(self, expression: str) -> None:
        self.expression = expression

    def after(self, moment: datetime) -> datetime:
        """The first slot strictly after `moment`."""
        slot: datetime = next(CronSim(self.expression, moment.astimezone(UTC)))
        return slot.astimezone(UTC)

    def before(self, moment: datetime) -> datetime:
        """The last slot strictly before `moment`."""
        slot: datetime = next(CronSim(self.expression, moment.astimezone(UTC), reverse=True))
        return slot.astimezone(UTC)

    def at_or_before(self, moment: datetime) -> datetime:
        # cronsim's reverse step is strict; slots are whole minutes, so a second later includes `moment`.
        return self.before(moment + timedelta(seconds=1))
