"""Recurring schedules: the API's request and response bodies (their events are in schemas.events)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.api import MAX_PRIORITY, MIN_PRIORITY, NO_NUL, JsonObject, Labels

MissedPolicy = Literal["skip", "catch_up_one"]
SCHEDULE_LABEL = "schedule_id"  # the label every run a schedule fires carries


class ScheduleCreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    cron: str = Field(
        min_length=1, max_length=200, pattern=NO_NUL, description="5 fields, read in UTC: `*/15 * * * *`."
    )
    kind: str = Field(min_length=1, max_length=64, pattern=NO_NUL, description="Job kind of each run.")
    params: JsonObject = Field(default_factory=dict, description="Kind-specific parameters of each run.")
    task: str | None = Field(default=None, max_length=255, pattern=NO_NUL)
    # One label is the schedule's own (`schedule_id`), so a run keeps within the 32 a run may have.
    labels: Labels = Field(default_factory=dict, max_length=31)
    priority: int = Field(default=0, ge=MIN_PRIORITY, le=MAX_PRIORITY)
    missed: MissedPolicy = Field(
        default="skip",
        description="After slots were missed (the scheduler down): `skip` them, or `catch_up_one`: one run.",
    )
    enabled: bool = True


class ScheduleUpdateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


class ScheduleView(BaseModel):
    id: UUID
    name: str
    cron: str
    timezone: Literal["UTC"] = "UTC"
    kind: str
    params: dict[str, Any]
    task: str | None
    labels: dict[str, str]
    priority: int
    missed: MissedPolicy
    enabled: bool
    next_due_at: AwareDatetime | None = Field(description="The next slot; null while disabled.")
    last_fired_at: AwareDatetime | None
    last_run_id: UUID | None
    created_at: datetime
    updated_at: datetime


class ScheduleList(BaseModel):
    data: list[ScheduleView]
