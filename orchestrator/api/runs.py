"""The canonical API: /v1/runs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response
from fastapi.concurrency import run_in_threadpool

from orchestrator.api import cursor
from orchestrator.api.deps import EngineDep, PrincipalDep, ServiceDep, SettingsDep
from orchestrator.api.errors import NOT_FOUND_BODY, RESPONSES, responses
from orchestrator.api.views import created_view, event_view, run_view
from orchestrator.projections import runner
from orchestrator.readmodel.runs import RunFilters, get_run, list_runs, run_events
from orchestrator.services import Outcome, RunNotFound, SubmitRequest
from orchestrator.store.events import read_stream
from schemas.api import NO_NUL, EventList, RunCreateRequest, RunPage, RunView
from schemas.runs import RunStatus

router = APIRouter(prefix="/v1/runs", tags=["runs"])

_RUN_ERRORS = responses(401, 404, 422, 429, 503)
_SUBMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": RunView, "description": "A retry with the same `Idempotency-Key`: the run it created"},
    **responses(401, 409, 413, 422, 429, 503),
    409: {**RESPONSES[409], "description": "The `Idempotency-Key` was used with a different request"},
}
_CANCEL_RESPONSES = {
    **responses(401, 404, 409, 422, 429, 503),
    409: {**RESPONSES[409], "description": "The run has already finished"},
}


def _read_run(engine: EngineDep, tenant_id: str, run_id: UUID) -> RunView:
    with engine.connect() as conn:
        row = get_run(conn, tenant_id, run_id)
    if row is None:
        raise RunNotFound(str(run_id))
    return run_view(row)


def _view_after_write(engine: EngineDep, tenant_id: str, outcome: Outcome) -> RunView:
    """The run as the read model shows it; while the projector is behind (or down), as the log shows
    it: a run that exists must never answer 404 to the request that just wrote it."""
    with engine.connect() as conn:
        row = get_run(conn, tenant_id, outcome.run_id)
        created = None if row is not None else read_stream(conn, outcome.run_id, tenant_id=tenant_id)[:1]
    if row is not None:
        return run_view(row)
    if not created:
        raise RunNotFound(str(outcome.run_id))
    state = outcome.state
    return created_view(created[0]).model_copy(
        update={"status": state.status, "attempt": state.attempt, "cancel_requested": state.cancel_requested}
    )


@router.post("", status_code=201, response_model=RunView, responses=_SUBMIT_RESPONSES)
def submit_run(
    body: RunCreateRequest,
    principal: PrincipalDep,
    service: ServiceDep,
    engine: EngineDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=255, pattern=NO_NUL)] = None,
) -> RunView:
    """Submit a run. With an `Idempotency-Key`, a retry returns the run the first call created (200)."""
    outcome = service.submit(
        SubmitRequest(
            tenant_id=principal.tenant_id,
            kind=body.kind,
            params=body.params,
            task=body.task,
            parent_id=body.parent_run_id,
            labels=body.labels,
            idempotency_key=idempotency_key,
            actor=principal.actor,
        )
    )
    if not outcome.created:
        response.status_code = 200
    # Read-your-writes: the caller's next GET should see what it just submitted.
    runner.wait_for(engine, outcome.position, settings.read_your_writes_seconds)
    response.headers["Location"] = f"/v1/runs/{outcome.run_id}"
    return _view_after_write(engine, principal.tenant_id, outcome)


@router.get("", response_model=RunPage, responses=responses(401, 422, 429, 503))
def list_runs_route(
    principal: PrincipalDep,
    engine: EngineDep,
    settings: SettingsDep,
    status: RunStatus | None = None,
    kind: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    parent_id: UUID | None = None,
    root_only: bool = False,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor_token: Annotated[str | None, Query(alias="cursor", max_length=512)] = None,
) -> RunPage:
    """Runs of the caller's tenant, newest first. Follow `next_cursor` for the next page."""
    filters = RunFilters(
        status=status.value if status else None,
        kind=kind,
        parent_id=parent_id,
        root_only=root_only,
        created_after=created_after,
        created_before=created_before,
    )
    secret = settings.secret_key or ""
    after = None
    if cursor_token:
        position = cursor.decode(secret, cursor_token, principal.tenant_id, filters.as_dict())
        try:
            after = (datetime.fromisoformat(position["c"]), UUID(position["i"]))
        except (KeyError, ValueError, TypeError):
            raise cursor.InvalidCursor("malformed cursor") from None
    with engine.connect() as conn:
        rows = list_runs(conn, principal.tenant_id, filters, limit + 1, after)
    page = [run_view(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = cursor.encode(
            secret,
            principal.tenant_id,
            filters.as_dict(),
            {"c": last.created_at.isoformat(), "i": str(last.id)},
        )
    return RunPage(data=page, next_cursor=next_cursor)


@router.get("/{run_id}", response_model=RunView, responses=_RUN_ERRORS)
def get_run_route(run_id: UUID, principal: PrincipalDep, engine: EngineDep) -> RunView:
    return _read_run(engine, principal.tenant_id, run_id)


@router.get("/{run_id}/events", response_model=EventList, responses=_RUN_ERRORS)
def get_run_events(run_id: UUID, principal: PrincipalDep, engine: EngineDep) -> EventList:
    """The run's event log in version order."""
    with engine.connect() as conn:
        rows = run_events(conn, principal.tenant_id, run_id)
    if not rows:
        raise RunNotFound(str(run_id))
    return EventList(data=[event_view(r) for r in rows])


@router.post("/{run_id}/cancel", response_model=RunView, responses=_CANCEL_RESPONSES)
async def cancel_run(
    run_id: UUID, principal: PrincipalDep, service: ServiceDep, engine: EngineDep, settings: SettingsDep
) -> RunView:
    """Cancel: a pending run ends canceled at once; a running one is asked to stop (409 if finished)."""
    outcome = await run_in_threadpool(service.cancel, principal.tenant_id, run_id, principal.actor)
    await run_in_threadpool(runner.wait_for, engine, outcome.position, settings.read_your_writes_seconds)
    return await run_in_threadpool(_view_after_write, engine, principal.tenant_id, outcome)


__all__ = ["NOT_FOUND_BODY", "router"]
