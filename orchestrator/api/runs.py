"""The canonical API: /v1/runs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import Header, Query, Response
from fastapi.concurrency import run_in_threadpool

from orchestrator.api import cursor
from orchestrator.api.deps import EngineDep, PrincipalDep, ServiceDep, SettingsDep
from orchestrator.api.errors import RESPONSES, responses
from orchestrator.api.routing import api_router
from orchestrator.api.views import event_view, run_view
from orchestrator.readmodel.paging import decode_position, encode_position, position_of
from orchestrator.readmodel.runs import (
    RunFilters,
    as_written,
    get_run,
    list_runs,
    retries_of,
    run_events,
)
from orchestrator.services import RETRYABLE, Outcome, RunNotFound, SubmitRequest
from schemas.api import (
    NO_NUL,
    EventList,
    RunBatchRequest,
    RunBatchResponse,
    RunCreateRequest,
    RunPage,
    RunView,
)
from schemas.runs import RunStatus

router = api_router(prefix="/v1/runs", tags=["runs"])

_RUN_ERRORS = responses(401, 404, 422, 429, 503)
_SUBMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": RunView, "description": "A retry with the same `Idempotency-Key`: the run it created"},
    **responses(401, 409, 413, 422, 429, 503),
    409: {**RESPONSES[409], "description": "The `Idempotency-Key` was used with a different request"},
}
_CANCEL_RESPONSES = {
    **responses(401, 404, 409, 422, 429, 503),
    409: {**RESPONSES[409], "description": "The run has already succeeded or failed"},
}


def _read_run(engine: EngineDep, tenant_id: str, run_id: UUID) -> RunView:
    with engine.connect() as conn:
        run = get_run(conn, tenant_id, run_id)
        if run is None:
            raise RunNotFound(str(run_id))
        # Only a failed or canceled run can have retries; any other answers null, as write routes do.
        retried_by = retries_of(conn, tenant_id, run_id) if run.status in RETRYABLE else None
    return run_view(run, retried_by)


def _after_write(outcome: Outcome) -> RunView:
    """The run as the request's own write left it: no read, and no wait for the projector."""
    return run_view(as_written(outcome.stream))


@router.post("", status_code=201, response_model=RunView, responses=_SUBMIT_RESPONSES)
def submit_run(
    body: RunCreateRequest,
    principal: PrincipalDep,
    service: ServiceDep,
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
            priority=body.priority,
            not_before=body.not_before,
        )
    )
    if not outcome.created:
        response.status_code = 200
    response.headers["Location"] = f"/v1/runs/{outcome.run_id}"
    return _after_write(outcome)


@router.post(
    ":batch",
    status_code=201,
    response_model=RunBatchResponse,
    responses={**responses(401, 409, 413, 422, 429, 503), 409: _SUBMIT_RESPONSES[409]},
)
def submit_batch(body: RunBatchRequest, principal: PrincipalDep, service: ServiceDep) -> RunBatchResponse:
    """Submit up to 1,000 runs in one transaction: all are recorded or none is. Each item may carry its own
    `idempotency_key`; a retried batch answers the runs its first call created (`created` false)."""
    outcomes = service.submit_batch(
        [
            SubmitRequest(
                tenant_id=principal.tenant_id,
                kind=item.kind,
                params=item.params,
                task=item.task,
                parent_id=item.parent_run_id,
                labels=item.labels,
                idempotency_key=item.idempotency_key,
                actor=principal.actor,
                priority=item.priority,
                not_before=item.not_before,
            )
            for item in body.runs
        ]
    )
    return RunBatchResponse(
        data=[_after_write(outcome) for outcome in outcomes], created=[o.created for o in outcomes]
    )


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
            after = decode_position(position)
        except ValueError:
            raise cursor.InvalidCursor("malformed cursor") from None
    with engine.connect() as conn:
        found = list_runs(conn, principal.tenant_id, filters, limit + 1, after)
    next_cursor = None
    if len(found) > limit:
        last = encode_position(position_of(found[limit - 1]))
        next_cursor = cursor.encode(secret, principal.tenant_id, filters.as_dict(), last)
    return RunPage(data=[run_view(r) for r in found[:limit]], next_cursor=next_cursor)


@router.get("/{run_id}", response_model=RunView, responses=_RUN_ERRORS)
def get_run_route(run_id: UUID, principal: PrincipalDep, engine: EngineDep) -> RunView:
    return _read_run(engine, principal.tenant_id, run_id)


@router.get("/{run_id}/events", response_model=EventList, responses=_RUN_ERRORS)
def get_run_events(run_id: UUID, principal: PrincipalDep, engine: EngineDep) -> EventList:
    """The run's event log in version order."""
    with engine.connect() as conn:
        recorded = run_events(conn, principal.tenant_id, run_id)
    if not recorded:
        raise RunNotFound(str(run_id))
    return EventList(data=[event_view(r) for r in recorded])


@router.post("/{run_id}/cancel", response_model=RunView, responses=_CANCEL_RESPONSES)
async def cancel_run(run_id: UUID, principal: PrincipalDep, service: ServiceDep) -> RunView:
    """Cancel: a pending run ends canceled at once; a running one is asked to stop. Asking again, or for a
    run already canceled, answers the run (200); 409 for a run that ended otherwise."""
    outcome = await run_in_threadpool(service.cancel, principal.tenant_id, run_id, principal.actor)
    return _after_write(outcome)
