"""Runs in bulk and again: `POST /v1/runs:cancel` over the list filters, `POST /v1/runs/{id}:retry`.

A bulk cancel is many single cancels (each through `RunService.cancel`, so each cascades to its run's
descendants), chosen from the read model and bounded per call: a call never holds one transaction over
thousands of runs, and each run's outcome is reported on its own."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import Header, Response
from fastapi.concurrency import run_in_threadpool

from orchestrator.api.deps import EngineDep, PrincipalDep, ServiceDep
from orchestrator.api.errors import RESPONSES, responses
from orchestrator.api.routing import api_router
from orchestrator.api.views import run_view
from orchestrator.domain.errors import DomainError
from orchestrator.readmodel.runs import RunFilters, as_written, cancelable
from orchestrator.services import RunContended, RunNotFound, RunService
from schemas.api import (
    NO_NUL,
    BulkCancelItem,
    BulkCancelOutcome,
    BulkCancelRequest,
    BulkCancelResponse,
    RunView,
)
from schemas.runs import RunStatus

router = api_router(prefix="/v1/runs", tags=["runs"])

_RETRY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": RunView, "description": "A retry with the same `Idempotency-Key`: the run it created"},
    **responses(401, 404, 409, 422, 429, 503),
    409: {**RESPONSES[409], "description": "The run is not failed or canceled (yet)"},
}


def _cancel_one(service: RunService, tenant_id: str, run_id: UUID, actor: str) -> BulkCancelOutcome:
    try:
        outcome = service.cancel(tenant_id, run_id, actor)
    except DomainError:
        return "already_finished"
    except RunNotFound:
        return "not_found"
    except RunContended:
        return "contended"
    if outcome.state.status is not RunStatus.CANCELED:
        return "cancel_requested"  # running: asked now, or by an earlier call the read model has not shown
    return "canceled" if outcome.recorded else "already_canceled"


def _cancel_matching(
    service: RunService, tenant_id: str, actor: str, body: BulkCancelRequest
) -> BulkCancelResponse:
    filters = RunFilters(
        status=body.status.value if body.status else None,
        kind=body.kind,
        parent_id=body.parent_id,
        root_only=body.root_only,
        created_after=body.created_after,
        created_before=body.created_before,
    )
    with service.engine.connect() as conn:
        chosen, matched = cancelable(conn, tenant_id, filters, body.limit)
    items = [BulkCancelItem(run_id=r, outcome=_cancel_one(service, tenant_id, r, actor)) for r in chosen]
    return BulkCancelResponse(data=items, matched=matched, more=matched > len(chosen))


@router.post(":cancel", response_model=BulkCancelResponse, responses=responses(401, 422, 429, 503))
async def cancel_runs(
    body: BulkCancelRequest, principal: PrincipalDep, service: ServiceDep
) -> BulkCancelResponse:
    """Cancel the live runs matching the filters of `GET /v1/runs`, newest first, at most `limit` (1,000) a
    call; `more` says whether another call has runs left to cancel. Children are canceled with their run."""
    return await run_in_threadpool(_cancel_matching, service, principal.tenant_id, principal.actor, body)


@router.post("/{run_id}:retry", status_code=201, response_model=RunView, responses=_RETRY_RESPONSES)
async def retry_run(
    run_id: UUID,
    principal: PrincipalDep,
    service: ServiceDep,
    engine: EngineDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=255, pattern=NO_NUL)] = None,
) -> RunView:
    """Run a failed or canceled run again as a new top-level run with the same kind, task, params and
    labels; its `retry_of` names this run, and this run's get lists it in `retried_by`. 409 otherwise."""
    outcome = await run_in_threadpool(
        service.retry, principal.tenant_id, run_id, principal.actor, idempotency_key
    )
    if not outcome.created:
        response.status_code = 200
    response.headers["Location"] = f"/v1/runs/{outcome.run_id}"
    return run_view(as_written(outcome.stream))
