"""Workflow documents: versioned JSON, an ordered list of steps `{key, tool, input, continue_on_error?}`.

Validated when saved, so a run never starts on a document that cannot work: keys are unique, tools are
known, each step's input fits its tool, references name the context or *earlier* steps, and a join names an
earlier spawn. Values may be references (schemas.templates) where a tool takes data, never where it takes a
name (a task, a step to join).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.api import NO_NUL, JsonObject
from schemas.templates import PER_CHILD_ROOTS, TemplateError, references

STEP_KEY = r"^[a-z][a-z0-9_]{0,63}$"
MAX_STEPS = 100
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_COUNT = 100_000  # the schema's own ceiling; ORCH_MAX_FAN_OUT is the deployment's (lower) one
TaskName = Annotated[str, Field(min_length=1, max_length=255, pattern=NO_NUL)]
Reference = Annotated[str, Field(pattern=r"^\s*\{\{.*\}\}\s*$", max_length=1000)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TransformInput(_Input):
    """Deterministic data from the context and earlier outputs: `value` (references resolved), then
    optionally `pluck` a field from each element of a list, then `aggregate` it."""

    value: Any
    pluck: str | None = Field(default=None, max_length=255)
    aggregate: Literal["count", "sum", "min", "max", "unique", "first", "last"] | None = None


class TaskInput(_Input):
    """Run a published task inline, as this step, with `context` as the task's context variables."""

    task: TaskName
    context: dict[str, Any] = Field(default_factory=dict)


class SpawnInput(_Input):
    """Start child runs of a published task in one batch: `count` copies, or one per element of `items`.
    Inside `context`, `{{ item }}` and `{{ index }}` are the child's element and position."""

    task: TaskName
    count: Annotated[int, Field(ge=1, le=MAX_COUNT)] | Reference | None = None
    items: list[Any] | Reference | None = None
    context: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_of_count_or_items(self) -> Self:
        if (self.count is None) == (self.items is None):
            raise ValueError("give exactly one of count and items")
        if isinstance(self.items, list) and not 1 <= len(self.items) <= MAX_COUNT:
            raise ValueError(f"items must hold 1 to {MAX_COUNT} elements")
        return self


class JoinInput(_Input):
    """Wait until every child of an earlier spawn step has ended; the run holds no worker meanwhile.
    A child that did not succeed fails the step unless `allow_failed`."""

    step: str = Field(pattern=STEP_KEY)
    allow_failed: bool = False


TOOL_INPUTS: dict[str, type[_Input]] = {
    "transform": TransformInput,
    "task": TaskInput,
    "spawn": SpawnInput,
    "join": JoinInput,
}
ToolName = Literal["transform", "task", "spawn", "join"]


class WorkflowStep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(pattern=STEP_KEY, description="Unique in the document; later steps refer to it.")
    tool: ToolName
    input: JsonObject = Field(default_factory=dict)
    continue_on_error: bool = Field(default=False, description="A failure here does not fail the run.")


class WorkflowDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: list[WorkflowStep] = Field(min_length=1, max_length=MAX_STEPS)

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if len(json.dumps(self.model_dump(mode="json"))) > MAX_DOCUMENT_BYTES:
            raise ValueError(f"the document is larger than {MAX_DOCUMENT_BYTES} bytes")
        earlier: dict[str, str] = {}
        for position, step in enumerate(self.steps):
            where = f"step {position} ({step.key!r})"
            if step.key in earlier:
                raise ValueError(f"{where}: the key repeats an earlier step's")
            _check_input(where, step, earlier)
            earlier[step.key] = step.tool
        return self


def _check_input(where: str, step: WorkflowStep, earlier: dict[str, str]) -> None:
    try:
        parsed = TOOL_INPUTS[step.tool].model_validate(step.input)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        at = ".".join(str(part) for part in first["loc"]) or "input"
        raise ValueError(f"{where}: input.{at}: {first['msg']}") from None
    if isinstance(parsed, JoinInput) and earlier.get(parsed.step) != "spawn":
        raise ValueError(f"{where}: join names {parsed.step!r}, which is not an earlier spawn step")
    # Inside a spawn's per-child context `item` and `index` are known too; anywhere else they are not.
    per_child = step.input.get("context", {}) if step.tool == "spawn" else {}
    rest = {name: value for name, value in step.input.items() if step.tool != "spawn" or name != "context"}
    try:
        for value, allowed_per_child in ((rest, False), (per_child, True)):
            for root, path in references(value):
                if root in PER_CHILD_ROOTS and not allowed_per_child:
                    raise TemplateError(f"'{root}' is only known inside a spawn's context")
                if root == "steps" and (not path or path[0] not in earlier):
                    named = path[0] if path else "no"
                    raise TemplateError(f"a reference names {named!r}, which is not a step before this one")
    except TemplateError as exc:
        raise ValueError(f"{where}: {exc}") from None


class WorkflowCreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    document: WorkflowDocument


class WorkflowVersionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    document: WorkflowDocument
    label: str | None = Field(default=None, max_length=255, pattern=NO_NUL)


class WorkflowVersionRef(BaseModel):
    id: UUID = Field(description="The workflow document.")
    version_id: UUID
    version: int


class WorkflowVersionView(BaseModel):
    version_id: UUID
    version: int
    label: str | None
    created_at: datetime


class WorkflowSummary(BaseModel):
    id: UUID
    title: str
    latest_version: int
    created_at: datetime
    updated_at: datetime


class WorkflowView(WorkflowSummary):
    versions: list[WorkflowVersionView] = Field(description="Oldest first.")
    document: WorkflowDocument = Field(description="The latest version's document.")


class WorkflowList(BaseModel):
    data: list[WorkflowSummary]
    total: int
    limit: int
    offset: int


class WorkflowRunParams(BaseModel):
    """A `workflow` run's parameters: the exact version it started with, captured whole at creation (later
    versions never change a run), and the run's context."""

    model_config = ConfigDict(extra="forbid")
    document_id: UUID
    version_id: UUID
    version: int
    title: str
    label: str | None = None
    document: WorkflowDocument
    context: JsonObject = Field(default_factory=dict)
