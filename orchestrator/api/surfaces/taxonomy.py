"""The taxonomy surface: `GET /v1/taxonomy/runs`, field for field, plus `POST /v1/taxonomy/runs` (ours).

Taxonomy runs are runs of kind `taxonomy_build`; their field, source and label are creation attributes.
The caller names the tenant (`tenant_id`), which must be its own or one its key is granted; any other
tenant answers exactly like a missing run (404, the canonical body), so tenants cannot be probed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from orchestrator.api.deps import EngineDep, Principal, PrincipalDep, ServiceDep, SettingsDep
from orchestrator.api.errors import RESPONSES, responses
from orchestrator.projections import runner
from orchestrator.readmodel.runs import get_run
from orchestrator.readmodel.surfaces import taxonomy_runs
from orchestrator.services import RunNotFound, SubmitRequest
from orchestrator.store.events import RecordedEvent
from schemas.api import NO_NUL
from schemas.runs import RunStatus
from schemas.surfaces_taxonomy import TaxonomyRun, TaxonomyRunCreate, TaxonomyRunList

KIND = "taxonomy_build"

router = APIRouter(prefix="/v1/taxonomy/runs", tags=["taxonomy"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {**RESPONSES[404], "description": "Tenant not open to this key (body of a missing run)"}
}
_LIST_ERRORS: dict[int | str, dict[str, Any]] = {**responses(401, 422, 429, 503), **_NOT_FOUND}
_CREATE_ERRORS: dict[int | str, dict[str, Any]] = {**responses(401, 413, 422, 429, 503), **_NOT_FOUND}


def _require_tenant(principal: Principal, tenant_id: str) -> None:
    if tenant_id != principal.tenant_id and tenant_id not in principal.tenants:
        raise RunNotFound(tenant_id)


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _count(name: str, counts: Mapping[str, Any], result: Mapping[str, Any]) -> int:
    """Merged progress counts win; a final `result` may carry the same names; neither means 0."""
    for source in (counts, result):
        value = source.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
    return 0


def taxonomy_run(m: Mapping[Any, Any]) -> TaxonomyRun:
    """A `runs` row (or the same keys) as the page's Run. Error fields only on failed runs: a running run
    keeps its last attempt's error in the read model while a retry is scheduled, which is not a failure."""
    attributes: Mapping[str, Any] = m["attributes"] or {}
    counts: Mapping[str, Any] = m["counts"] or {}
    result: Mapping[str, Any] = m["result"] or {}
    failed = m["status"] == RunStatus.FAILED
    created_at, updated_at = _utc(m["created_at"]), _utc(m["updated_at"])
    assert created_at is not None and updated_at is not None
    return TaxonomyRun(
        id=m["id"],
        tenant_id=m["tenant_id"],
        status=m["status"],
        field_id=str(attributes.get("field_id") or ""),
        source_type=str(attributes.get("source_type") or ""),
        source_id=str(attributes.get("source_id") or ""),
        field_label=attributes.get("field_label") or None,
        record_count=_count("record_count", counts, result),
        embedding_count=_count("embedding_count", counts, result),
        cluster_count=_count("cluster_count", counts, result),
        node_count=_count("node_count", counts, result),
        error=(m["error"] or "run failed") if failed else None,
        error_code=m["error_code"] if failed else None,
        params=m["params"] or {},
        metrics=m["metrics"] or None,
        created_at=created_at,
        updated_at=updated_at,
        started_at=_utc(m["started_at"]),
        finished_at=_utc(m["finished_at"]),
    )


def _created(event: RecordedEvent) -> TaxonomyRun:
    """The run as its RunCreated event shows it, for when the projection has not caught up in time."""
    return taxonomy_run(
        {
            "id": event.stream_id,
            "tenant_id": event.tenant_id,
            "status": RunStatus.PENDING,
            "attributes": event.data.get("attributes"),
            "params": event.data.get("params"),
            "counts": None,
            "result": None,
            "metrics": None,
            "error": None,
            "error_code": None,
            "created_at": event.recorded_at,
            "updated_at": event.recorded_at,
            "started_at": None,
            "finished_at": None,
        }
    )


@router.get("", response_model=TaxonomyRunList, response_model_exclude_none=True, responses=_LIST_ERRORS)
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
    return TaxonomyRunList(data=[taxonomy_run(row._mapping) for row in rows])


@router.post(
    "",
    status_code=201,
    response_model=TaxonomyRun,
    response_model_exclude_none=True,
    responses=_CREATE_ERRORS,
)
def create_taxonomy_run(
    body: TaxonomyRunCreate,
    principal: PrincipalDep,
    service: ServiceDep,
    engine: EngineDep,
    settings: SettingsDep,
) -> TaxonomyRun:
    """Submit a taxonomy build for `tenant_id` (404 like the list when the key may not act for it)."""
    _require_tenant(principal, body.tenant_id)
    attributes = body.model_dump(include={"field_id", "source_type", "source_id", "field_label"})
    if body.field_label is None:
        del attributes["field_label"]
    outcome = service.submit(
        SubmitRequest(
            tenant_id=body.tenant_id,
            kind=KIND,
            params=body.params,
            attributes=attributes,
            actor=principal.actor,
        )
    )
    # Read-your-writes, as the canonical submit does: the caller's next list should show this run.
    if runner.wait_for(engine, outcome.position, settings.read_your_writes_seconds):
        with engine.connect() as conn:
            row = get_run(conn, body.tenant_id, outcome.run_id)
        if row is not None:
            return taxonomy_run(row._mapping)
    return _created(outcome.recorded[0])
