"""Bodies of the task-runs surface (`/api/v1/task-runs`), field for field as its reference page lists them.

Unlike the taxonomy page, this one shows `null` (`fail_message: null`), so fields that are not known yet
are present and null rather than absent: `completed_at` until the run finishes, the result location until
it succeeds, `fail_message` unless it failed.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class TaskRunStatus(StrEnum):
    REGISTERED = "registered"
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


class TaskRun(BaseModel):
    run_id: str
    run_name: str
    task_id: str
    task_name: str
    feature_id: str
    feature_name: str
    status: TaskRunStatus
    created_at: str = Field(description="ISO 8601 in UTC without an offset, e.g. 2024-11-22T08:54:46.")
    completed_at: str | None = Field(description="Same format; null until the run has finished.")
    result_bucket: str | None
    result_file_path: str | None
    line_count: int
    fail_message: str | None


class TaskRunPage(BaseModel):
    index: int = Field(description="Start location of the list (the offset asked for).")
    limit: int = Field(description="List output limit value (as asked for).")
    total: int = Field(description="How many runs match, across all pages.")
    runs: list[TaskRun]
