"""`spawn`: child runs of a published task, all in one batch through the one write path, each a child of
this run. Retried attempts start no duplicates: every child's idempotency key is its run, step and index."""

from __future__ import annotations

from typing import Any

from orchestrator.domain.errors import DomainError
from orchestrator.services import InvalidRequest, SubmitRequest
from orchestrator.workflows.tasks import task_problem, workflow_tasks
from orchestrator.workflows.templates import resolve
from schemas.tasks import ContextError, resolve_context
from schemas.templates import TemplateError
from schemas.workflows import SpawnInput
from workers.context import BLIP_SECONDS
from workers.errors import JobCanceled
from workers.resilience import retried
from workers.tools.base import ToolCall, ToolFailed, ToolResult, parsed


def _elements(spec: SpawnInput, limit: int) -> list[Any]:
    if isinstance(spec.items, str) or isinstance(spec.count, str):
        raise ToolFailed("count and items must resolve to a number and a list")
    elements = spec.items if spec.items is not None else [None] * (spec.count or 0)
    if len(elements) > limit:
        raise ToolFailed(
            f"{len(elements)} children is more than the fan-out limit {limit} (ORCH_MAX_FAN_OUT)"
        )
    return elements


def _contexts(call: ToolCall, spec: SpawnInput, elements: list[Any]) -> list[dict[str, Any]]:
    task = workflow_tasks()[spec.task]
    contexts = []
    for index, item in enumerate(elements):
        try:
            own = resolve(spec.context, {"item": item, "index": index})
            contexts.append(resolve_context(task, own))
        except TemplateError as exc:
            raise ToolFailed(f"child {index}: {exc}") from None
        except ContextError as exc:
            raise ToolFailed(f"child {index}: {exc.errors[0]['msg']}") from None
    return contexts


def run(call: ToolCall) -> ToolResult:
    spec = parsed(SpawnInput, call.input)
    if (problem := task_problem(spec.task)) is not None:
        raise ToolFailed(problem)
    ctx = call.ctx
    elements = _elements(spec, ctx.service.settings.max_fan_out)
    task = workflow_tasks()[spec.task]
    attributes = {
        "task_id": str(task.id),
        "task_name": task.name,
        "task_display_name": task.display_name,
        "triggered_by": "workflow",
        "trigger_ref": f"{ctx.run_id}:{call.step_key}",
    }
    requests = [
        SubmitRequest(
            tenant_id=ctx.tenant_id,
            kind=task.kind,
            params=context,
            task=task.name,
            parent_id=ctx.run_id,
            attributes={**attributes, "context": context},
            idempotency_key=f"workflow:{ctx.run_id}:{call.step_key}:{index}",
            actor=f"workflow:{ctx.run_id}",
        )
        for index, context in enumerate(_contexts(call, spec, elements))
    ]
    ctx.checkpoint()
    try:
        outcomes = retried(lambda: ctx.service.submit_batch(requests), BLIP_SECONDS)
    except InvalidRequest as exc:
        raise ToolFailed(str(exc.errors[0]["msg"])) from None
    except DomainError:
        raise JobCanceled() from None  # this run is finished or being canceled: it takes no new child
    return ToolResult(
        {"task": task.name, "count": len(outcomes), "children": [str(o.run_id) for o in outcomes]}
    )
