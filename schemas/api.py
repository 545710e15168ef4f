"""Bodies of the canonical API (/v1/runs). Write models forbid unknown fields; read models are separate."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.runs import ErrorCode, RunStatus


class RunCreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(min_length=1, max_length=64, description="Job kind, e.g. `sleep`.")
    params: dict[str, Any] = Field(default_factory=dict, description="Kind-specific parameters.")
    parent_run_id: UUID | None = Field(default=None, description="Makes this run a child of that run.")
    task: str | None = Field(default=None, max_length=255)
    labels: dict[str, str] = Field(default_factory=dict, max_length=32)


class Progress(BaseModel):
    done: int
    total: int | None = None


class RunView(BaseModel):
    id: UUID
    tenant_id: str
    kind: str
    task: str | None
    status: RunStatus
    error_code: ErrorCode | None
    error: str | None
    parent_id: UUID | None
    root_id: UUID
    depth: int
    attempt: int
    max_attempts: int
    cancel_requested: bool
    retry_at: datetime | None
    progress: Progress
    counts: dict[str, int]
    params: dict[str, Any]
    labels: dict[str, Any]
    metrics: dict[str, Any]
    result: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


class RunPage(BaseModel):
    data: list[RunView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class EventView(BaseModel):
    position: int = Field(description="Global, commit-ordered position in the log.")
    version: int = Field(description="1-based version within the run's stream.")
    type: str
    data: dict[str, Any]
    recorded_at: datetime


class EventList(BaseModel):
    data: list[EventView]


class ErrorBody(BaseModel):
    detail: str
    error_code: str


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    detail: list[ValidationErrorItem]
