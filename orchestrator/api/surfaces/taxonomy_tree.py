"""The tree a taxonomy run stored: `GET /v1/taxonomy/runs/{id}/nodes` and `.../assignments` (ours).

Like the taxonomy list, the caller names the tenant; a run of another tenant, or of another kind, answers
exactly like a missing one. A run that has not stored its tree yet answers an empty list.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Query, Request

from orchestrator.api import cursor
from orchestrator.api.deps import EngineDep, PrincipalDep, SettingsDep
from orchestrator.api.routing import api_router
from orchestrator.api.surfaces.taxonomy import LIST_ERRORS, find_taxonomy_run
from orchestrator.text_records import TextRecords
from schemas.api import NO_NUL
from schemas.taxonomy import AssignmentPage, NodeList

router = api_router(prefix="/v1/taxonomy/runs", tags=["taxonomy"])

TenantQuery = Annotated[str, Query(min_length=1, max_length=255, pattern=NO_NUL)]


def _datasets(request: Request) -> TextRecords:
    found: TextRecords = request.app.state.datasets
    return found


@router.get("/{run_id}/nodes", response_model=NodeList, responses=LIST_ERRORS)
def taxonomy_nodes(
    run_id: UUID, tenant_id: TenantQuery, request: Request, principal: PrincipalDep, engine: EngineDep
) -> NodeList:
    """Every node of the run's tree, parents before children (top level: depth 1, no parent)."""
    find_taxonomy_run(engine, principal, tenant_id, run_id)
    return NodeList(data=_datasets(request).tree_nodes(tenant_id, run_id))


@router.get("/{run_id}/assignments", response_model=AssignmentPage, responses=LIST_ERRORS)
def taxonomy_assignments(
    run_id: UUID,
    tenant_id: TenantQuery,
    request: Request,
    principal: PrincipalDep,
    engine: EngineDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor_token: Annotated[str | None, Query(alias="cursor", max_length=512)] = None,
) -> AssignmentPage:
    """Each record's deepest node and its path of node ids from the top level down, in record order."""
    find_taxonomy_run(engine, principal, tenant_id, run_id)
    secret, filters = settings.secret_key or "", {"run": str(run_id)}
    after = None
    if cursor_token:
        after = cursor.decode(secret, cursor_token, tenant_id, filters).get("r")
        if not isinstance(after, int):
            raise cursor.InvalidCursor("malformed cursor")
    found = _datasets(request).tree_assignments(tenant_id, run_id, limit + 1, after)
    next_cursor = None
    if len(found) > limit:
        next_cursor = cursor.encode(secret, tenant_id, filters, {"r": found[limit - 1].record_id})
    return AssignmentPage(data=found[:limit], next_cursor=next_cursor)
