"""Bodies of the data-products surface (`/api/v1/data-products`), field for field as its document names them.

The names are camelCase on purpose: this surface is a published contract, so the attribute names are the
JSON names and a reader can grep the document and this module side by side. Request bodies forbid unknown
fields; response models are separate from them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.api import NO_NUL, JsonObject
from schemas.runs import RunStatus
from schemas.tasks import PublishedTask


class CreateRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    context: JsonObject = Field(description="Values for the task's context variables.")
    taskName: str | None = Field(
        default=None, max_length=255, pattern=NO_NUL, description="A published task's name."
    )
    triggeredBy: str = Field(default="api", max_length=255, pattern=NO_NUL)
    workflowDocumentId: UUID | None = None
    workspaceId: UUID | None = None


class RunOutcome(BaseModel):
    """What a finished run produced, when its result says so (`result.outcome`)."""

    artifactId: str | None = None
    artifactName: str | None = None
    rendererKind: str | None = None
    rowCount: int | None = None
    summary: str | None = None
    version: int | None = None


class RunSummary(BaseModel):
    completedAt: datetime | None
    createdAt: datetime
    depth: int
    id: UUID
    originRoomId: UUID | None
    originRoomRunId: UUID | None
    originThreadId: UUID | None
    outcome: RunOutcome | None
    parentRunId: UUID | None
    rootRunId: UUID
    startedAt: datetime | None
    status: RunStatus
    taskDisplayName: str | None
    taskId: UUID | None
    triggerRef: str | None
    triggeredBy: str | None
    workflowDocumentId: UUID | None
    workflowDocumentTitle: str | None
    workflowDocumentVersion: int | None
    workflowDocumentVersionId: UUID | None
    workflowDocumentVersionLabel: str | None
    workspaceId: UUID | None


class Usage(BaseModel):
    cacheWriteTokens: int
    cachedInputTokens: int
    inputTokens: int
    outputTokens: int
    totalCost: str = Field(description="Decimal string, so no cost is rounded through a float.")


class Observability(BaseModel):
    usage: Usage
    # Recorded by the job that ran, when it says; empty or null when it did not.
    loadedSkillSlugs: list[str] = Field(default_factory=list)
    modelId: str | None = None
    provider: str | None = None
    traceProvider: str | None = None


class RunStep(BaseModel):
    completedAt: datetime | None
    durationMs: int | None
    error: str | None
    id: UUID = Field(description="Stable: derived from the run, the attempt and the step's sequence.")
    input: dict[str, Any]
    output: dict[str, Any] | None
    sequence: int
    sourceType: str | None = None  # no job records one yet
    startedAt: datetime
    status: str
    stepKey: str
    toolCallId: str | None
    toolName: str | None


class SnapshotDocument(BaseModel):
    capturedAt: datetime | None = None
    documentId: UUID | None = None
    documentVersion: int | None = None
    documentVersionId: UUID | None = None
    documentVersionLabel: str | None = None
    title: str | None = None


class WorkflowRuntimeSnapshot(BaseModel):
    document: SnapshotDocument
    kind: str = "workflow_runtime_snapshot"


class RunDetail(RunSummary):
    context: dict[str, Any]
    error: str | None
    observability: Observability
    result: dict[str, Any] | None
    steps: list[RunStep]
    # No job writes a transcript yet: null until one does, never invented.
    transcriptContent: str | None = None
    transcriptRawData: dict[str, Any] | None = None
    transcriptUpdatedAt: datetime | None = None
    workflowRuntimeSnapshot: WorkflowRuntimeSnapshot | None


class RunList(BaseModel):
    items: list[RunSummary]
    total: int = Field(description="Runs matching the filters, not the size of this page.")


class RunTree(BaseModel):
    items: list[RunSummary] = Field(description="The whole tree: root first, then depth-first.")


class ContextVarView(BaseModel):
    default: Any = None
    description: str
    name: str
    required: bool
    resolveFrom: str | None
    type: str


class TaskView(BaseModel):
    category: str
    contextVars: list[ContextVarView]
    description: str
    displayName: str
    executionMode: str
    id: UUID
    name: str

    @classmethod
    def of(cls, task: PublishedTask) -> TaskView:
        variables = [
            ContextVarView(
                default=var.default,
                description=var.description,
                name=var.name,
                required=var.required,
                resolveFrom=var.resolve_from,
                type=var.type,
            )
            for var in task.context_vars
        ]
        return cls(
            category=task.category,
            contextVars=variables,
            description=task.description,
            displayName=task.display_name,
            executionMode=task.execution_mode,
            id=task.id,
            name=task.name,
        )


class TaskList(BaseModel):
    items: list[TaskView]
