"""Recurring schedules: one event stream per schedule, and the `schedules` row that is its current state,
written in the same transaction as every append, so the row never says what the log does not. Every change
takes the row's lock first: two writers of one schedule take turns, and the stream version checks the rest.
Reads and writes are always by tenant (row-level security is the second wall)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.cron import Cron
from orchestrator.domain.schedule import Decision, MissedPolicy
from orchestrator.store.events import append
from orchestrator.store.schema import schedules
from schemas.events import (
    Event,
    ScheduleCreated,
    ScheduleDeleted,
    ScheduleFired,
    ScheduleSkipped,
    ScheduleUpdated,
)


@dataclass(frozen=True)
class ScheduleRecord:
    id: UUID
    tenant_id: str
    name: str
    cron: str
    kind: str
    params: dict[str, Any]
    task: str | None
    labels: dict[str, str]
    priority: int
    missed: MissedPolicy
    enabled: bool
    next_due_at: datetime | None
    last_fired_at: datetime | None
    last_run_id: UUID | None
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> ScheduleRecord:
        return cls(**{f.name: row[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class NewSchedule:
    name: str
    cron: str
    kind: str
    params: dict[str, Any]
    task: str | None
    labels: dict[str, str]
    priority: int
    missed: MissedPolicy
    enabled: bool


def _metadata(actor: str, tenant_id: str, schedule_id: UUID) -> dict[str, Any]:
    return {
        "actor": actor,
        "tenant_id": tenant_id,
        "causation_id": str(uuid.uuid4()),
        "correlation_id": str(schedule_id),
    }


def _record(conn: Connection, schedule: ScheduleRecord, new: Sequence[Event], actor: str) -> None:
    append(
        conn,
        schedule.id,
        schedule.tenant_id,
        new,
        schedule.version,
        _metadata(actor, schedule.tenant_id, schedule.id),
    )


def create(conn: Connection, tenant_id: str, new: NewSchedule, now: datetime, actor: str) -> ScheduleRecord:
    schedule_id = uuid.uuid4()
    event = ScheduleCreated(schedule_id=schedule_id, tenant_id=tenant_id, **new.__dict__)
    append(conn, schedule_id, tenant_id, [event], 0, _metadata(actor, tenant_id, schedule_id))
    row = conn.execute(
        schedules.insert()
        .values(
            id=schedule_id,
            tenant_id=tenant_id,
            **new.__dict__,
            next_due_at=Cron(new.cron).after(now) if new.enabled else None,
            version=1,
        )
        .returning(*schedules.c)
    ).one()
    return ScheduleRecord.from_row(row._mapping)


def get(conn: Connection, tenant_id: str, schedule_id: UUID, *, lock: bool = False) -> ScheduleRecord | None:
    query = sa.select(schedules).where(schedules.c.id == schedule_id, schedules.c.tenant_id == tenant_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    return ScheduleRecord.from_row(row._mapping) if row is not None else None


def list_for(conn: Connection, tenant_id: str, limit: int = 500) -> list[ScheduleRecord]:
    query = (
        sa.select(schedules)
        .where(schedules.c.tenant_id == tenant_id)
        .order_by(schedules.c.created_at.desc(), schedules.c.id.desc())
        .limit(limit)
    )
    return [ScheduleRecord.from_row(row._mapping) for row in conn.execute(query)]


def set_enabled(
    conn: Connection, tenant_id: str, schedule_id: UUID, enabled: bool, now: datetime, actor: str
) -> ScheduleRecord | None:
    """Pause or resume; None when the tenant has no such schedule. Resuming waits for the first slot after
    now: what fell due while paused was not missed, it was paused. Asking for the state it has is a no-op."""
    schedule = get(conn, tenant_id, schedule_id, lock=True)
    if schedule is None or schedule.enabled == enabled:
        return schedule
    _record(conn, schedule, [ScheduleUpdated(enabled=enabled)], actor)
    row = conn.execute(
        schedules.update()
        .where(schedules.c.id == schedule_id)
        .values(
            enabled=enabled,
            next_due_at=Cron(schedule.cron).after(now) if enabled else None,
            version=schedule.version + 1,
            updated_at=sa.func.clock_timestamp(),
        )
        .returning(*schedules.c)
    ).one()
    return ScheduleRecord.from_row(row._mapping)


def delete(conn: Connection, tenant_id: str, schedule_id: UUID, actor: str) -> bool:
    """The stream keeps its history and ends with ScheduleDeleted; the row goes. False when there was none."""
    schedule = get(conn, tenant_id, schedule_id, lock=True)
    if schedule is None:
        return False
    _record(conn, schedule, [ScheduleDeleted()], actor)
    conn.execute(schedules.delete().where(schedules.c.id == schedule_id))
    return True


def lock_due(
    conn: Connection, now: datetime, limit: int, exclude: Collection[UUID] = ()
) -> list[ScheduleRecord]:
    """Enabled schedules due by `now`, of every tenant, but not `exclude`, locked until the caller's
    transaction ends; rows another transaction holds are passed over, so two ticks never handle one
    schedule at once (and the second finds it no longer due once the first commits)."""
    query = (
        sa.select(schedules)
        .where(schedules.c.enabled, schedules.c.next_due_at <= now)
        .order_by(schedules.c.next_due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if exclude:
        query = query.where(schedules.c.id.not_in(list(exclude)))
    return [ScheduleRecord.from_row(row._mapping) for row in conn.execute(query)]


def record_decision(
    conn: Connection, schedule: ScheduleRecord, decision: Decision, run_id: UUID | None
) -> None:
    """The tick's events and the row's next slot, in the transaction that submitted the run (if any)."""
    new: list[Event] = []
    if decision.missed and decision.last_missed is not None:
        new.append(ScheduleSkipped(missed=decision.missed, due_at=decision.last_missed))
    if decision.fire is not None and run_id is not None:
        new.append(ScheduleFired(run_id=run_id, due_at=decision.fire))
    _record(conn, schedule, new, "scheduler")
    values: dict[str, Any] = {"next_due_at": decision.next_due, "version": schedule.version + len(new)}
    if decision.fire is not None:
        values.update(last_fired_at=decision.fire, last_run_id=run_id)
    conn.execute(schedules.update().where(schedules.c.id == schedule.id).values(**values))
