"""The `workflow` kind: the steps of one captured document version, in order, each recorded as step events.

After each step the outputs so far are a checkpoint, so an attempt after a crash, or after the run was
parked on a join and resumed, starts at the first unfinished step. A step's input is resolved against the
run's context and earlier outputs (orchestrator.workflows.templates: lookups only, nothing evaluated). A
failed step fails the run unless it says `continue_on_error`.
"""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestrator.workflows.templates import resolve
from schemas.runs import ErrorCode
from schemas.templates import PER_CHILD_ROOTS, TemplateError
from schemas.workflows import WorkflowRunParams, WorkflowStep
from workers.context import JobContext
from workers.errors import JobError, JobParked
from workers.tools import TOOLS, join
from workers.tools.base import ToolCall, ToolFailed

_CALL_NAMESPACE = uuid.UUID("8c3b1d52-0f7e-4c1a-b6d4-2a9e5f3c7b18")


def run(ctx: JobContext, params: BaseModel) -> dict[str, Any]:
    try:
        workflow = WorkflowRunParams.model_validate(params.model_dump())
    except ValidationError:
        raise JobError(ErrorCode.INVALID_OUTPUT, "the run's parameters are not a workflow document") from None
    resume = ctx.resume_from or {}
    outputs: dict[str, Any] = dict(resume.get("outputs", {}))
    failed: list[str] = list(resume.get("failed", []))
    steps = workflow.document.steps
    for index in range(int(resume.get("next_step", 0)), len(steps)):
        step = steps[index]
        error = _run_step(ctx, workflow, step, index, outputs)
        if error is not None:
            if not step.continue_on_error:
                raise JobError(ErrorCode.GENERATION_FAILED, f"step {step.key!r} failed: {error}")
            failed.append(step.key)
        ctx.progress(index + 1, len(steps), message=f"step {step.key} {'failed' if error else 'done'}")
        ctx.save_checkpoint({"next_step": index + 1, "outputs": outputs, "failed": failed})
    return {"outputs": outputs, "failed_steps": failed, "outcome": _outcome(workflow, outputs, failed)}


def _run_step(
    ctx: JobContext, workflow: WorkflowRunParams, step: WorkflowStep, index: int, outputs: dict[str, Any]
) -> str | None:
    """Run one step and record it; its output goes into `outputs`. Returns the error, or None."""
    keep = PER_CHILD_ROOTS if step.tool == "spawn" else frozenset()
    try:
        resolved: dict[str, Any] = resolve(step.input, {"context": workflow.context, "steps": outputs}, keep)
        error = None
    except TemplateError as exc:
        resolved, error = step.input, str(exc)
    call = ToolCall(ctx, step.key, resolved, workflow.context, outputs)
    if error is None and step.tool == "join":
        try:
            awaited, live = join.pending(call)
        except ToolFailed as exc:  # nothing to wait for (the spawn failed): the step fails, recorded below
            awaited, live, error = (), 0, exc.message
        if live:
            ctx.progress(index, len(workflow.document.steps), message=f"waiting for {live} children")
            raise JobParked(step.key, awaited)
    call_id = str(uuid.uuid5(_CALL_NAMESPACE, f"{ctx.run_id}:{step.key}:{ctx.attempt}"))
    ctx.start_step(step.key, index + 1, step.tool, resolved, call_id)
    started = time.monotonic()
    output: dict[str, Any] = {}
    if error is None:
        try:
            result = TOOLS[step.tool](call)
            output = result.output
            if _spent(result.usage):
                ctx.usage(**result.usage)
        except ToolFailed as exc:
            output, error = exc.output, exc.message
    outputs[step.key] = output
    ctx.finish_step(step.key, index + 1, output, error, int((time.monotonic() - started) * 1000))
    return error


def _spent(usage: dict[str, Any]) -> bool:
    return any(Decimal(str(value)) != 0 for value in usage.values())


def _outcome(workflow: WorkflowRunParams, outputs: dict[str, Any], failed: list[str]) -> dict[str, Any]:
    """What the run produced, in the data-products surface's names: the last step's output is the artifact."""
    last = workflow.document.steps[-1].key
    produced = outputs.get(last, {})
    rows = next((v for k in ("value", "results", "children") if isinstance(v := produced.get(k), list)), None)
    done = len(workflow.document.steps) - len(failed)
    return {
        "artifactName": last,
        "rendererKind": "json",
        "rowCount": len(rows) if rows is not None else None,
        "summary": f"{workflow.title}: {done} of {len(workflow.document.steps)} steps succeeded",
        "version": workflow.version,
    }
