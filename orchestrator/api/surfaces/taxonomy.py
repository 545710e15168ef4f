"""The taxonomy surface: `GET /v1/taxonomy/runs`, field for field, plus `POST /v1/taxonomy/runs` (ours).

Taxonomy runs are runs of kind `taxonomy_build`; their field, source and label are creation attributes.
The caller names the tenant (`tenant_id`), which must be its own or one its key is granted; any other
tenant answers exactly like a missing run (404, the canonical body), so tenants cannot be probed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import Header, Query, Request, Response

from orchestrator.api.deps import EngineDep, Principal, PrincipalDep, ServiceDep
from orchestrator.api.errors import RESPONSES, responses
from orchestrator.api.routing import api_router
from orchestrator.projections.runs import RunRecord
from orchestrator.readmodel.runs import as_written, get_run
from orchestrator.readmodel.surfaces import taxonomy_runs
from orchestrator.services import RunNotFound, SubmitRequest
from orchestrator.text_records import TextRecords
from schemas.api import NO_NUL
from schemas.runs import RunStatus
from schemas.surfaces_taxonomy import TaxonomyRun, TaxonomyRunCreate, TaxonomyRunList

KIND = "taxonomy_build"

router = api_router(prefix="/v1/taxonomy/runs", tags=["taxonomy"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {**RESPONSES[404], "description": "Tenant not open to this key (body of a missing run)"}
}
LIST_ERRORS: dict[int | str, dict[str, Any]] = {**responses(401, 422, 429, 503), **_NOT_FOUND}
_CREATE_ERRORS: dict[int | str, dict[str, Any]] = {
    200: {"model": TaxonomyRun, "description": "A retry with the same `Idempotency-Key`: the run it created"},
    **responses(401, 409, 413, 422, 429, 503),
    409: {**RESPONSES[409], "description": "The `Idempotency-Key` was used with a different request"},
    **_NOT_FOUND,
}


def _require_tenant(principal: Principal, tenant_id: str) -> None:
    if tenant_id not in principal.tenants:  # the key's own tenant and those granted to it
        raise RunNotFound(tenant_id)


def find_taxonomy_run(engine: EngineDep, principal: Principal, tenant_id: str, run_id: UUID) -> RunRecord:
    """The tenant's taxonomy run, or RunNotFound (also for a run of another kind or another tenant)."""
    _require_tenant(principal, tenant_id)
    with engine.connect() as conn:
        run = get_run(conn, tenant_id, run_id)
    if run is None or run.kind != KIND:
        raise RunNotFound(str(run_id))
    return run


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def taxonomy_run(run: RunRecord) -> TaxonomyRun:
    """A run as the page's Run. Error fields only on failed runs: a running run keeps its last attempt's
    error in the read model while a retry is scheduled, which is not a failure."""
    attributes = run.attributes
    failed = run.status == RunStatus.FAILED
    return TaxonomyRun(
        id=run.id,
        tenant_id=run.tenant_id,
        status=run.status,
        field_id=str(attributes.get("field_id") or ""),
        source_type=str(attributes.get("source_type") or ""),
        source_id=str(attributes.get("source_id") or ""),
        field_label=attributes.get("field_label") or None,
        record_count=run.count("record_count"),
        embedding_count=run.count("embedding_count"),
        cluster_count=run.count("cluster_count"),
        node_count=run.count("node_count"),
        error=(run.error or "run failed") if failed else None,
        error_code=run.error_code if failed else None,
        params=dict(run.params),
        metrics=dict(run.metrics) or None,
        created_at=run.created_at.astimezone(UTC),
        updated_at=run.updated_at.astimezone(UTC),
        started_at=_utc(run.started_at),
        finished_at=_utc(run.finished_at),
    )


@router.get("", response_model=TaxonomyRunList, response_model_exclude_none=True, responses=LIST_ERRORS)
def list_taxonomy_runs(
    principal: PrincipalDep,
    engine: EngineDep,
    tenant_id: Annotated[str, Query(min_length=1, max_length=255, pattern=NO_NUL)],
    field_id: Annotated[str | None, Query(max_length=255, pattern=NO_NUL)] = None,
    source_type: Annotated[str | None, Query(max_length=255, pattern=NO_NUL)] = None,
    source_id: Annotated[str | None, Query(max_length=255, pattern=NO_NUL)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> TaxonomyRunList:
    """Taxonomy runs of `tenant_id`, most recent first.

    `source_id` is tri-state: omit it for no filter, pass it empty for the "no source" bucket, or a value
    for that source. An empty `field_id` or `source_type` is no filter. 404 (the canonical not-found body)
    when `tenant_id` is neither the key's tenant nor granted to it.
    """
    _require_tenant(principal, tenant_id)
    with engine.connect() as conn:
        rows = taxonomy_runs(
            conn,
            tenant_id,
            KIND,
            field_id=field_id,
            source_type=source_type,
            source_id=source_id,
            limit=limit,
        )
    return TaxonomyRunList(data=[taxonomy_run(run) for run in rows])


@router.get("/{run_id}", response_model=TaxonomyRun, response_model_exclude_none=True, responses=LIST_ERRORS)
def get_taxonomy_run(
    run_id: UUID,
    principal: PrincipalDep,
    engine: EngineDep,
    tenant_id: Annotated[str, Query(min_length=1, max_length=255, pattern=NO_NUL)],
) -> TaxonomyRun:
    """One taxonomy run of `tenant_id`, with the list's fields (404 for any other run or tenant)."""
    return taxonomy_run(find_taxonomy_run(engine, principal, tenant_id, run_id))


@router.post(
    "",
    status_code=201,
    response_model=TaxonomyRun,
    response_model_exclude_none=True,
    responses=_CREATE_ERRORS,
)
def create_taxonomy_run(
    body: TaxonomyRunCreate,
    request: Request,
    principal: PrincipalDep,
    service: ServiceDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=255, pattern=NO_NUL)] = None,
) -> TaxonomyRun:
    """Submit a taxonomy build for `tenant_id` (404 like the list when the key may not act for it). With an
    `Idempotency-Key`, a retry returns the run the first call created (200)."""
    _require_tenant(principal, body.tenant_id)
    attributes = body.model_dump(include={"field_id", "source_type", "source_id", "field_label"})
    if body.field_label is None:
        # The label the field's records carry, when they carry one: the surface shows it.
        datasets: TextRecords = request.app.state.datasets
        found = datasets.field_label(body.tenant_id, body.field_id)
        if found is None:
            del attributes["field_label"]
        else:
            attributes["field_label"] = found
    outcome = service.submit(
        SubmitRequest(
            tenant_id=body.tenant_id,
            kind=KIND,
            params=body.params,
            attributes=attributes,
            idempotency_key=idempotency_key,
            actor=principal.actor,
        )
    )
    if not outcome.created:
        response.status_code = 200
    return taxonomy_run(as_written(outcome.stream))
