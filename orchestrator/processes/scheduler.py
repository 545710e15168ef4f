"""Fires recurring schedules: a thread of the reconciler, so one scheduler is active at a time (the
reconciler's advisory lock). Each due schedule is handled in ONE transaction: the row lock, the run's
submission and the ScheduleFired / ScheduleSkipped events with the schedule's next slot all commit together
or not at all. A crash between steps leaves the schedule due, and the next tick does the whole of it again;
a repeated tick finds it no longer due. The run's idempotency key is derived from (schedule, slot), so even
a second scheduler racing this one could not create a second run for a slot.

`now` is a parameter (a clock for the loop), so tests drive time without sleeping.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

import structlog
from sqlalchemy.engine import Connection

from orchestrator.cron import Cron
from orchestrator.domain.schedule import decide
from orchestrator.services import IdempotencyConflict, InvalidRequest, RunService, SubmitRequest
from orchestrator.store import schedules
from schemas.schedules import SCHEDULE_LABEL

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
_BATCH = 100


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class TickReport:
    fired: int = 0
    skipped: int = 0  # slots not fired, over all schedules
    failed: int = 0  # schedules whose run was refused, or whose transaction failed


def idempotency_key(schedule_id: object, due_at: datetime) -> str:
    return f"schedule:{schedule_id}:{due_at.astimezone(UTC).isoformat()}"


def tick(service: RunService, now: datetime, limit: int = _BATCH) -> TickReport:
    """Handle the schedules due by `now`, each in a transaction of its own, at most `limit` of them (the
    next tick goes on with the rest). A schedule whose transaction fails is left due for the next tick and
    passed over for the rest of this one, so one tenant's broken schedule never holds up the others."""
    report = TickReport()
    grace = timedelta(seconds=service.settings.schedule_grace_seconds)
    passed_over: set[UUID] = set()
    for _ in range(limit):
        try:
            with service.engine.begin() as conn:
                due = schedules.lock_due(conn, now, 1, exclude=passed_over)
                if not due:
                    break
                schedule = due[0]
                passed_over.add(schedule.id)
                _handle(service, conn, schedule, now, grace, report)
        except Exception as exc:  # this schedule again next tick; the others now
            log.error(
                "scheduler.schedule_failed", schedule_id=str(schedule.id), error_type=type(exc).__name__
            )
            report.failed += 1
    return report


def _handle(
    service: RunService,
    conn: Connection,
    schedule: schedules.ScheduleRecord,
    now: datetime,
    grace: timedelta,
    report: TickReport,
) -> None:
    decision = decide(Cron(schedule.cron), schedule.next_due_at or now, schedule.missed, now, grace)
    if decision is None:  # lock_due chose it by next_due_at <= now, so something is due
        return
    run_id = None
    if decision.fire is not None:
        try:
            # A savepoint: a refused submission leaves the tick's own writes standing, and the slot is
            # recorded as missed instead of being tried again forever.
            with conn.begin_nested():
                run_id = _submit(service, conn, schedule, decision.fire)
        except (InvalidRequest, IdempotencyConflict) as exc:
            # Its kind or params no longer valid in this deployment, or the tenant itself used the key.
            log.error("scheduler.submit_refused", schedule_id=str(schedule.id), error=str(exc))
            decision = replace(decision, fire=None, missed=decision.missed + 1, last_missed=decision.fire)
            report.failed += 1
    schedules.record_decision(conn, schedule, decision, run_id)
    report.skipped += decision.missed
    if run_id is not None:
        report.fired += 1
        log.info(
            "scheduler.fired", schedule_id=str(schedule.id), run_id=str(run_id), due_at=str(decision.fire)
        )


def _submit(
    service: RunService, conn: Connection, schedule: schedules.ScheduleRecord, due_at: datetime
) -> UUID:
    request = SubmitRequest(
        tenant_id=schedule.tenant_id,
        kind=schedule.kind,
        params=schedule.params,
        task=schedule.task,
        labels={**schedule.labels, SCHEDULE_LABEL: str(schedule.id)},
        idempotency_key=idempotency_key(schedule.id, due_at),
        actor="scheduler",
        priority=schedule.priority,
    )
    return service.submit(request, conn).run_id


def run_scheduler(service: RunService, stop: threading.Event, clock: Clock = _utcnow) -> None:
    """A tick every scheduler interval until `stop` is set."""
    while not stop.is_set():
        try:
            report = tick(service, clock())
            if report.fired or report.skipped or report.failed:
                log.info("scheduler.tick", **report.__dict__)
        except Exception as exc:  # the next tick retries; one bad tick must not end the thread
            log.error("scheduler.tick_failed", error_type=type(exc).__name__)
        stop.wait(service.settings.scheduler_interval_seconds)
