"""`task`: a published task run inline, as this step of the workflow's own attempt. Its progress and
checkpoints stay inside the step (the workflow's checkpoint is the resume point); its usage is the step's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from orchestrator.workflows.tasks import task_problem, workflow_tasks
from schemas.jobs import JOB_KINDS
from schemas.tasks import ContextError, resolve_context
from schemas.workflows import TaskInput
from workers.context import JobContext
from workers.errors import JobError
from workers.jobs import handler_for
from workers.tools.base import ToolCall, ToolFailed, ToolResult, parsed


class InlineContext(JobContext):
    """The workflow's context as the inline task sees it: cancel checks and the lease are the workflow's;
    progress, steps and checkpoints are the task's own business and are not recorded on the run."""

    def __init__(self, outer: JobContext) -> None:
        super().__init__(outer.service, outer.run_id, outer.attempt, None, outer.tenant_id, outer.attributes)
        self.outer = outer
        self.spent: dict[str, Any] = {}

    def checkpoint(self) -> None:
        self.outer.checkpoint()

    def progress(self, done: int, total: int | None = None, counts: Any = None, message: Any = None) -> None:
        self.checkpoint()

    def save_checkpoint(self, data: dict[str, Any]) -> None:
        self.checkpoint()
        self.resume_from = data

    def usage(self, **tokens: Any) -> None:
        for name, value in tokens.items():
            if name == "cost":
                self.spent[name] = format(Decimal(self.spent.get(name, "0")) + Decimal(str(value)), "f")
            else:
                self.spent[name] = int(self.spent.get(name, 0)) + int(value)

    @contextmanager
    def step(
        self, step_key: str, tool_name: str | None = None, input: dict[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        yield {}


def run(call: ToolCall) -> ToolResult:
    spec = parsed(TaskInput, call.input)
    if (problem := task_problem(spec.task)) is not None:
        raise ToolFailed(problem)
    task = workflow_tasks()[spec.task]
    try:
        params = JOB_KINDS[task.kind].params_model.model_validate(resolve_context(task, spec.context))
    except ContextError as exc:
        raise ToolFailed(str(exc.errors[0]["msg"])) from None
    except ValueError as exc:  # pydantic's ValidationError: a value out of the kind's range
        raise ToolFailed(f"the task's context does not fit it: {str(exc).splitlines()[0]}") from None
    inline = InlineContext(call.ctx)
    try:
        handler = handler_for(task.kind)
        if handler is None:
            raise ToolFailed(f"no worker for kind {task.kind!r} is deployed")
        result = handler(inline, params)
    except JobError as exc:
        raise ToolFailed(exc.message) from None
    return ToolResult({"task": task.name, "result": result or {}}, inline.spent)
