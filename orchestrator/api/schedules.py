"""`/v1/schedules`: a tenant's recurring schedules. Each is an event stream with a current-state row
(orchestrator.store.schedules); the reconciler's scheduler fires the due ones (processes.scheduler). Runs a
schedule fires carry the label `schedule_id`: `GET /v1/runs` lists them like any run."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from fastapi import Response

from orchestrator.api.deps import EngineDep, PrincipalDep
from orchestrator.api.errors import NotFound, responses
from orchestrator.api.routing import api_router
from orchestrator.cron import cron_problem
from orchestrator.services import InvalidRequest, validate_params
from orchestrator.store import schedules
from schemas.schedules import (
    ScheduleCreateRequest,
    ScheduleList,
    ScheduleUpdateRequest,
    ScheduleView,
)

router = api_router(prefix="/v1/schedules", tags=["schedules"])


def schedule_view(record: schedules.ScheduleRecord) -> ScheduleView:
    return ScheduleView(
        id=record.id,
        name=record.name,
        cron=record.cron,
        kind=record.kind,
        params=record.params,
        task=record.task,
        labels=record.labels,
        priority=record.priority,
        missed=record.missed,
        enabled=record.enabled,
        next_due_at=record.next_due_at,
        last_fired_at=record.last_fired_at,
        last_run_id=record.last_run_id,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def new_schedule(body: ScheduleCreateRequest) -> schedules.NewSchedule:
    """The schedule as it will fire, checked now as a submission would be, or InvalidRequest."""
    if (problem := cron_problem(body.cron)) is not None:
        raise InvalidRequest([{"loc": ["body", "cron"], "msg": problem, "type": "value_error"}])
    params = validate_params(body.kind, body.params)
    return schedules.NewSchedule(
        name=body.name,
        cron=" ".join(body.cron.split()),
        kind=body.kind,
        params=params,
        task=body.task,
        labels=body.labels,
        priority=body.priority,
        missed=body.missed,
        enabled=body.enabled,
    )


@router.post("", status_code=201, response_model=ScheduleView, responses=responses(401, 413, 422, 429, 503))
def create_schedule(
    body: ScheduleCreateRequest, principal: PrincipalDep, engine: EngineDep, response: Response
) -> ScheduleView:
    """A new schedule; its first run is due at the first slot after now (UTC)."""
    new = new_schedule(body)
    with engine.begin() as conn:
        record = schedules.create(conn, principal.tenant_id, new, datetime.now(UTC), principal.actor)
    response.headers["Location"] = f"/v1/schedules/{record.id}"
    return schedule_view(record)


@router.get("", response_model=ScheduleList, responses=responses(401, 429, 503))
def list_schedules(principal: PrincipalDep, engine: EngineDep) -> ScheduleList:
    """The tenant's schedules, newest first (at most 500)."""
    with engine.connect() as conn:
        found = schedules.list_for(conn, principal.tenant_id)
    return ScheduleList(data=[schedule_view(r) for r in found])


@router.get("/{schedule_id}", response_model=ScheduleView, responses=responses(401, 404, 422, 429, 503))
def get_schedule(schedule_id: UUID, principal: PrincipalDep, engine: EngineDep) -> ScheduleView:
    with engine.connect() as conn:
        record = schedules.get(conn, principal.tenant_id, schedule_id)
    if record is None:
        raise NotFound("schedule")
    return schedule_view(record)


@router.patch("/{schedule_id}", response_model=ScheduleView, responses=responses(401, 404, 422, 429, 503))
def update_schedule(
    schedule_id: UUID, body: ScheduleUpdateRequest, principal: PrincipalDep, engine: EngineDep
) -> ScheduleView:
    """Pause (`enabled: false`) or resume. A resumed schedule waits for its first slot after now: slots
    that fell due while it was paused are neither run nor counted as missed."""
    with engine.begin() as conn:
        record = schedules.set_enabled(
            conn, principal.tenant_id, schedule_id, body.enabled, datetime.now(UTC), principal.actor
        )
    if record is None:
        raise NotFound("schedule")
    return schedule_view(record)


@router.delete(
    "/{schedule_id}", status_code=204, response_class=Response, responses=responses(401, 404, 422, 429, 503)
)
def delete_schedule(schedule_id: UUID, principal: PrincipalDep, engine: EngineDep) -> Response:
    """The schedule fires no more; runs it fired are left as they are."""
    with engine.begin() as conn:
        deleted = schedules.delete(conn, principal.tenant_id, schedule_id, principal.actor)
    if not deleted:
        raise NotFound("schedule")
    return Response(status_code=204)
