"""`/v1/workflows`: a tenant's workflow documents and their versions. A run captures one version whole
when it starts (`POST /api/v1/data-products/runs` with `workflowDocumentId`), so a new version never changes
a run already started."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import Query

from orchestrator.api.deps import EngineDep, PrincipalDep, SettingsDep
from orchestrator.api.errors import NotFound, responses
from orchestrator.api.routing import api_router
from orchestrator.services import InvalidRequest
from orchestrator.settings import Settings
from orchestrator.store import workflows
from orchestrator.workflows.tasks import task_problem
from schemas.workflows import (
    SpawnInput,
    WorkflowCreateRequest,
    WorkflowDocument,
    WorkflowList,
    WorkflowSummary,
    WorkflowVersionRef,
    WorkflowVersionRequest,
    WorkflowVersionView,
    WorkflowView,
)

router = api_router(prefix="/v1/workflows", tags=["workflows"])


def _deployment_checks(document: WorkflowDocument, settings: Settings) -> None:
    """What the document's schema cannot know: the tasks this deployment publishes, its fan-out bound."""
    errors: list[dict[str, Any]] = []
    for index, step in enumerate(document.steps):
        at = ["body", "document", "steps", index, "input"]
        task = step.input.get("task") if step.tool in ("spawn", "task") else None
        if isinstance(task, str) and (problem := task_problem(task)) is not None:
            errors.append({"loc": [*at, "task"], "msg": problem, "type": "value_error"})
        count = SpawnInput.model_validate(step.input).count if step.tool == "spawn" else None
        if isinstance(count, int) and count > settings.max_fan_out:
            msg = f"count {count} is more than the fan-out limit {settings.max_fan_out} (ORCH_MAX_FAN_OUT)"
            errors.append({"loc": [*at, "count"], "msg": msg, "type": "value_error"})
        items = step.input.get("items") if step.tool == "spawn" else None
        if isinstance(items, list) and len(items) > settings.max_fan_out:
            msg = (
                f"{len(items)} items is more than the fan-out limit {settings.max_fan_out} (ORCH_MAX_FAN_OUT)"
            )
            errors.append({"loc": [*at, "items"], "msg": msg, "type": "value_error"})
    if errors:
        raise InvalidRequest(errors)


def _summary(record: workflows.WorkflowRecord) -> WorkflowSummary:
    return WorkflowSummary(
        id=record.id,
        title=record.title,
        latest_version=record.latest_version,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


@router.post(
    "", status_code=201, response_model=WorkflowVersionRef, responses=responses(401, 413, 422, 429, 503)
)
def create_workflow(
    body: WorkflowCreateRequest, principal: PrincipalDep, engine: EngineDep, settings: SettingsDep
) -> WorkflowVersionRef:
    """A new workflow document, as its version 1."""
    _deployment_checks(body.document, settings)
    with engine.begin() as conn:
        version = workflows.create(
            conn, principal.tenant_id, body.title, body.document.model_dump(mode="json")
        )
    return WorkflowVersionRef(id=version.workflow_id, version_id=version.id, version=version.version)


@router.post(
    "/{workflow_id}/versions",
    status_code=201,
    response_model=WorkflowVersionRef,
    responses=responses(401, 404, 413, 422, 429, 503),
)
def add_version(
    workflow_id: UUID,
    body: WorkflowVersionRequest,
    principal: PrincipalDep,
    engine: EngineDep,
    settings: SettingsDep,
) -> WorkflowVersionRef:
    """The document's next version; runs already started keep the version they captured."""
    _deployment_checks(body.document, settings)
    document = body.document.model_dump(mode="json")
    with engine.begin() as conn:
        version = workflows.add_version(conn, principal.tenant_id, workflow_id, document, body.label)
    if version is None:
        raise NotFound("workflow")
    return WorkflowVersionRef(id=workflow_id, version_id=version.id, version=version.version)


@router.get("", response_model=WorkflowList, responses=responses(401, 422, 429, 503))
def list_workflows(
    principal: PrincipalDep,
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> WorkflowList:
    """The tenant's workflow documents, newest first."""
    with engine.connect() as conn:
        total, found = workflows.page(conn, principal.tenant_id, limit, offset)
    return WorkflowList(data=[_summary(r) for r in found], total=total, limit=limit, offset=offset)


@router.get("/{workflow_id}", response_model=WorkflowView, responses=responses(401, 404, 422, 429, 503))
def get_workflow(workflow_id: UUID, principal: PrincipalDep, engine: EngineDep) -> WorkflowView:
    """One document: its versions, oldest first, and the latest version's steps."""
    with engine.connect() as conn:
        record = workflows.get(conn, principal.tenant_id, workflow_id)
        found = workflows.versions(conn, principal.tenant_id, workflow_id) if record else []
    if record is None or not found:
        raise NotFound("workflow")
    return WorkflowView(
        **_summary(record).model_dump(),
        versions=[
            WorkflowVersionView(version_id=v.id, version=v.version, label=v.label, created_at=v.created_at)
            for v in found
        ],
        document=WorkflowDocument.model_validate(found[-1].document),
    )
