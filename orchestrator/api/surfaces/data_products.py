"""The data-products surface, `/api/v1/data-products`: runs of published tasks, their steps, usage and trees.

A mapping of the `runs` and `run_steps` read models, never a store of its own. What the surface knows and
the lifecycle does not (task, trigger, workflow document, workspace, the resolved context) is recorded as
creation attributes of `RunCreated`, so it is in the log and survives a rebuild. A field nobody recorded is
null rather than invented.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import cache
from typing import Annotated, Any
from uuid import UUID

from fastapi import Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, TypeAdapter, ValidationError

from orchestrator.api.dataset_runs import dataset_submission
from orchestrator.api.deps import EngineDep, PrincipalDep, ServiceDep
from orchestrator.api.errors import RESPONSES, responses
from orchestrator.api.routing import api_router
from orchestrator.api.stream import STREAM_RESPONSES, run_event_response
from orchestrator.api.workflow_runs import KIND as WORKFLOW_KIND
from orchestrator.api.workflow_runs import workflow_submission
from orchestrator.datasets.published import ALL_TASKS
from orchestrator.datasets.published import KIND as DATASET_KIND
from orchestrator.projections.runs import RunRecord
from orchestrator.projections.steps import StepRecord
from orchestrator.readmodel.runs import RunFilters
from orchestrator.readmodel.tree import RunOutline, page_runs, run_tree, run_with_steps, with_steps
from orchestrator.services import InvalidRequest, Outcome, RunNotFound, SubmitRequest
from schemas.api import NO_NUL
from schemas.runs import RunStatus
from schemas.surfaces_data_products import (
    CreateRunRequest,
    Observability,
    RunDetail,
    RunList,
    RunStep,
    RunSummary,
    RunTree,
    TaskList,
    TaskView,
    Usage,
)
from schemas.tasks import ContextError, resolve_context

router = api_router(prefix="/api/v1/data-products", tags=["data-products"])

_ERRORS = responses(401, 404, 422, 429, 503)
_LIST_ERRORS = responses(401, 422, 429, 503)
_CREATE_ERRORS = {
    **responses(401, 409, 413, 422, 429, 503),
    409: {**RESPONSES[409], "description": "The `Idempotency-Key` was used with a different request"},
}
_CANCEL_ERRORS = {
    **responses(401, 404, 409, 422, 429, 503),
    409: {**RESPONSES[409], "description": "The run has already succeeded or failed"},
}
_STEP_NAMESPACE = uuid.UUID("0d6f3f0c-2b8e-4f61-9a55-6c1f0b7e2d94")
_MAX_OFFSET = 2**63 - 1  # PostgreSQL's OFFSET is a bigint: beyond it the database, not the caller, would fail


@cache
def _adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    return TypeAdapter(model.model_fields[name].rebuild_annotation())


def _recorded(model: type[BaseModel], name: str, value: Any) -> Any:
    """`value` as the type of `model.name`, or null. Attributes and results are shared by every surface and
    by every job, so a value of another shape reads as unknown instead of failing the whole page."""
    if value is None:  # most attributes are not recorded: every field they fill is optional
        return None
    try:
        return _adapter(model, name).validate_python(value)
    except ValidationError:
        return None


# Fields recorded as creation attributes: JSON name -> attribute key. Unrecorded ones are null.
_SUMMARY_ATTRIBUTES = {
    "originRoomId": "origin_room_id",
    "originRoomRunId": "origin_room_run_id",
    "originThreadId": "thread_id",
    "taskDisplayName": "task_display_name",
    "taskId": "task_id",
    "triggerRef": "trigger_ref",
    "triggeredBy": "triggered_by",
    "workflowDocumentId": "workflow_document_id",
    "workflowDocumentTitle": "workflow_document_title",
    "workflowDocumentVersion": "workflow_document_version",
    "workflowDocumentVersionId": "workflow_document_version_id",
    "workflowDocumentVersionLabel": "workflow_document_version_label",
    "workspaceId": "workspace_id",
}
_SUMMARY_KEYS = tuple(_SUMMARY_ATTRIBUTES.values())
_SUMMARY_FIELD_OF = {key: name for name, key in _SUMMARY_ATTRIBUTES.items()}
_OBSERVABILITY_ATTRIBUTES = {
    "loadedSkillSlugs": "loaded_skill_slugs",
    "modelId": "model_id",
    "provider": "provider",
    "traceProvider": "trace_provider",
}
# Fields that are read-model columns under another name: JSON name -> column.
_SUMMARY_COLUMNS = {
    "id": "id",
    "createdAt": "created_at",
    "startedAt": "started_at",
    "completedAt": "finished_at",
    "status": "status",
    "depth": "depth",
    "parentRunId": "parent_id",
    "rootRunId": "root_id",
}
_STEP_COLUMNS = {
    "sequence": "sequence",
    "stepKey": "step_key",
    "toolName": "tool_name",
    "status": "status",
    "input": "input",
    "output": "output",
    "error": "error",
    "durationMs": "duration_ms",
    "startedAt": "started_at",
    "completedAt": "completed_at",
    "toolCallId": "tool_call_id",
}


def _summary_fields(run: RunOutline) -> dict[str, Any]:
    fields: dict[str, Any] = dict.fromkeys(_SUMMARY_ATTRIBUTES)
    for key, value in run.attributes.items():  # only the recorded ones: most runs have none of them
        fields[_SUMMARY_FIELD_OF[key]] = _recorded(RunSummary, _SUMMARY_FIELD_OF[key], value)
    fields.update({name: getattr(run, column) for name, column in _SUMMARY_COLUMNS.items()})
    fields["outcome"] = _recorded(RunSummary, "outcome", run.outcome)
    return fields


def summary_view(run: RunOutline) -> RunSummary:
    return RunSummary(**_summary_fields(run))


def _step_view(step: StepRecord) -> RunStep:
    row = step.as_row()
    step_id = uuid.uuid5(_STEP_NAMESPACE, f"{step.run_id}:{step.attempt}:{step.sequence}")
    return RunStep.model_validate({"id": step_id, **{name: row[c] for name, c in _STEP_COLUMNS.items()}})


def detail_view(run: RunRecord, steps: Sequence[StepRecord]) -> RunDetail:
    attrs = run.attributes
    context = attrs.get("context")
    recorded = {k: _recorded(Observability, k, attrs.get(a)) for k, a in _OBSERVABILITY_ATTRIBUTES.items()}
    return RunDetail(
        **_summary_fields(RunOutline.of(run, _SUMMARY_KEYS)),
        # Runs submitted on another surface have no context: their params are what the job received.
        context=context if isinstance(context, dict) else dict(run.params),
        error=run.error,
        observability=Observability(
            **{k: v for k, v in recorded.items() if v is not None},
            usage=Usage(
                inputTokens=run.usage_input_tokens,
                outputTokens=run.usage_output_tokens,
                cachedInputTokens=run.usage_cached_input_tokens,
                cacheWriteTokens=run.usage_cache_write_tokens,
                totalCost=format(run.usage_cost, "f"),  # plain notation: never "1E-7"
            ),
        ),
        result=dict(run.result) if run.result is not None else None,
        steps=[_step_view(s) for s in steps],
        workflowRuntimeSnapshot=_recorded(
            RunDetail, "workflowRuntimeSnapshot", attrs.get("workflow_runtime_snapshot")
        ),
    )


def _read_detail(engine: EngineDep, tenant_id: str, run_id: UUID) -> RunDetail:
    with engine.connect() as conn:
        found = run_with_steps(conn, tenant_id, run_id)
    if found is None:
        raise RunNotFound(str(run_id))
    return detail_view(*found)


def _after_write(outcome: Outcome) -> RunDetail:
    """The run as the request's own write left it: no read, and no wait for the projector."""
    found = with_steps(outcome.stream)
    assert found is not None, "a written stream starts with RunCreated"
    return detail_view(*found)


@router.get("/runs", response_model=RunList, responses=_LIST_ERRORS)
def list_runs(
    principal: PrincipalDep,
    engine: EngineDep,
    task_id: UUID | None = None,
    workflow_document_id: UUID | None = None,
    thread_id: UUID | None = None,
    status: RunStatus | None = None,
    root_only: bool = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=_MAX_OFFSET)] = 0,
) -> RunList:
    """The caller's runs, newest first; `total` counts every run matching the filters."""
    wanted = {"task_id": task_id, "workflow_document_id": workflow_document_id, "thread_id": thread_id}
    filters = RunFilters(
        attributes={key: str(value) for key, value in wanted.items() if value is not None},
        status=status.value if status else None,
        root_only=root_only,
    )
    with engine.connect() as conn:
        found, total = page_runs(conn, principal.tenant_id, filters, limit, offset, _SUMMARY_KEYS)
    return RunList(items=[summary_view(r) for r in found], total=total)


@router.post("/runs", response_model=RunDetail, responses=_CREATE_ERRORS)
def create_run(
    body: CreateRunRequest,
    principal: PrincipalDep,
    service: ServiceDep,
    engine: EngineDep,
    idempotency_key: Annotated[str | None, Header(max_length=255, pattern=NO_NUL)] = None,
) -> RunDetail:
    """Run a published task with `context`; missing variables are refused, defaults are filled in. Without
    `taskName`, `workflowDocumentId` runs that workflow document's latest version with `context`. With an
    `Idempotency-Key`, a retry returns the run the first call created."""
    if body.taskName is None and body.workflowDocumentId is not None:
        return _create_workflow_run(body, principal, service, engine, idempotency_key)
    task = ALL_TASKS.get(body.taskName or "")
    if task is None:
        known = ", ".join(sorted(ALL_TASKS))
        kind = "missing" if body.taskName is None else "value_error"
        msg = f"a published task is required; published tasks: {known}"
        raise InvalidRequest([{"loc": ["body", "taskName"], "msg": msg, "type": kind}])
    try:
        context = resolve_context(task, body.context)
    except ContextError as exc:
        raise InvalidRequest(exc.errors) from None
    attributes = {
        "task_id": str(task.id),
        "task_name": task.name,
        "task_display_name": task.display_name,
        "triggered_by": body.triggeredBy,
        "workflow_document_id": str(body.workflowDocumentId) if body.workflowDocumentId else None,
        "workspace_id": str(body.workspaceId) if body.workspaceId else None,
        "context": context,
    }
    params = context
    if task.kind == DATASET_KIND:
        # A dataset task runs on a feature: its file and names are looked up now and kept with the run.
        with engine.connect() as conn:
            params, dataset_attributes = dataset_submission(conn, principal.tenant_id, task, context, None)
        attributes.update(dataset_attributes)
    request = SubmitRequest(
        tenant_id=principal.tenant_id,
        kind=task.kind,
        params=params,
        task=task.name,
        attributes=attributes,
        idempotency_key=idempotency_key,
        actor=principal.actor,
    )
    try:
        outcome = service.submit(request)
    except InvalidRequest as exc:
        # The job kind judged the values (ranges, say): report them where this surface's caller put them.
        raise InvalidRequest([_as_context_error(e) for e in exc.errors]) from None
    return _after_write(outcome)


def _create_workflow_run(
    body: CreateRunRequest,
    principal: PrincipalDep,
    service: ServiceDep,
    engine: EngineDep,
    idempotency_key: str | None,
) -> RunDetail:
    assert body.workflowDocumentId is not None
    with engine.connect() as conn:
        params, attributes = workflow_submission(
            conn, principal.tenant_id, body.workflowDocumentId, body.context
        )
    attributes["triggered_by"] = body.triggeredBy
    attributes["workspace_id"] = str(body.workspaceId) if body.workspaceId else None
    request = SubmitRequest(
        tenant_id=principal.tenant_id,
        kind=WORKFLOW_KIND,
        params=params,
        attributes=attributes,
        idempotency_key=idempotency_key,
        actor=principal.actor,
    )
    return _after_write(service.submit(request))


def _as_context_error(error: dict[str, Any]) -> dict[str, Any]:
    loc = list(error["loc"])
    return {**error, "loc": ["body", "context", *loc[2:]] if loc[:2] == ["body", "params"] else loc}


@router.get("/runs/{run_id}", response_model=RunDetail, responses=_ERRORS)
def get_run_detail(run_id: UUID, principal: PrincipalDep, engine: EngineDep) -> RunDetail:
    return _read_detail(engine, principal.tenant_id, run_id)


@router.post("/runs/{run_id}/cancel", response_model=RunDetail, responses=_CANCEL_ERRORS)
def cancel_run(run_id: UUID, principal: PrincipalDep, service: ServiceDep) -> RunDetail:
    """Pending: canceled at once; running: asked to stop at its next checkpoint; asked again or already
    canceled: the run (200); succeeded or failed: 409."""
    outcome = service.cancel(principal.tenant_id, run_id, principal.actor)
    return _after_write(outcome)


@router.get("/runs/{run_id}/events", response_class=Response, responses=STREAM_RESPONSES)
async def stream_run_events(
    run_id: UUID,
    request: Request,
    principal: PrincipalDep,
    engine: EngineDep,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    """Server-Sent Events: the run's past events after `Last-Event-ID`, then live ones, until it ends."""
    return await run_event_response(
        request, engine, principal.tenant_id, principal.key_prefix, run_id, last_event_id
    )


@router.get("/runs/{run_id}/tree", response_model=RunTree, responses=_ERRORS)
def get_run_tree(run_id: UUID, principal: PrincipalDep, engine: EngineDep) -> RunTree:
    """Every run of the tree containing this one: the root first, then depth-first by creation."""
    with engine.connect() as conn:
        members = run_tree(conn, principal.tenant_id, run_id, _SUMMARY_KEYS)
    if members is None:
        raise RunNotFound(str(run_id))
    return RunTree(items=[summary_view(r) for r in members])


@router.get("/tasks", response_model=TaskList, responses=responses(401, 422, 429, 503))
def list_tasks(principal: PrincipalDep) -> TaskList:
    """The published tasks a run can be created from, with their context variables."""
    return TaskList(items=[TaskView.of(task) for task in ALL_TASKS.values()])
