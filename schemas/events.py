"""Domain events: immutable facts about a run (or a recurring schedule), stored as JSON in the event log.

Names are past tense and never renamed; a change of meaning is a new event type.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.runs import ErrorCode


class Event(BaseModel):
    """Base of all run events. `type` is the stored discriminator."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: ClassVar[str]


class RunCreated(Event):
    type: ClassVar[str] = "RunCreated"
    run_id: UUID
    tenant_id: str
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    task: str | None = None
    parent_id: UUID | None = None
    root_id: UUID | None = None
    depth: int = 0
    max_attempts: int = 3
    labels: dict[str, Any] = Field(default_factory=dict)
    # What a public surface records at creation (taxonomy field, dataset feature, corpus ids, task...).
    attributes: dict[str, Any] = Field(default_factory=dict)
    # Dispatch order within the tenant (higher first) and the earliest dispatch; a rebuild keeps both.
    priority: int = 0
    not_before: datetime | None = None
    # The failed or canceled run this one retries (`POST /v1/runs/{id}:retry`); None for a fresh run.
    retry_of: UUID | None = None


class RunStarted(Event):
    type: ClassVar[str] = "RunStarted"
    attempt: int
    worker: str | None = None


class ProgressReported(Event):
    type: ClassVar[str] = "ProgressReported"
    attempt: int
    done: int
    total: int | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    message: str | None = None


class StepStarted(Event):
    type: ClassVar[str] = "StepStarted"
    attempt: int
    step_key: str
    sequence: int
    tool_name: str | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    # Names this one invocation of the tool (a workflow step in one attempt); older events have none.
    tool_call_id: str | None = None


class StepFinished(Event):
    type: ClassVar[str] = "StepFinished"
    attempt: int
    step_key: str
    sequence: int
    status: str = "succeeded"
    output: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    duration_ms: int | None = None


class UsageRecorded(Event):
    type: ClassVar[str] = "UsageRecorded"
    attempt: int
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cost: str = "0"


class CheckpointRecorded(Event):
    """A job's own resume point: what it has durably finished (a chunk, a batch), so that the next
    attempt after a crash starts after it instead of from the beginning. Only the latest one counts."""

    type: ClassVar[str] = "CheckpointRecorded"
    attempt: int
    data: dict[str, Any] = Field(default_factory=dict)


class AttemptFailed(Event):
    """A transient failure of one attempt; another attempt is scheduled at retry_at."""

    type: ClassVar[str] = "AttemptFailed"
    attempt: int
    error_code: ErrorCode
    error: str
    retry_at: datetime


class AttemptLost(Event):
    """The worker running this attempt vanished (lease expired or never started)."""

    type: ClassVar[str] = "AttemptLost"
    attempt: int
    reason: str
    retry_at: datetime | None = None


class RunParked(Event):
    """The attempt ended to wait for child runs (a workflow's join): the run stays running, holds no lease
    and no worker, and gets its next attempt when every awaited child has ended (RunResumed)."""

    type: ClassVar[str] = "RunParked"
    attempt: int
    step_key: str
    awaiting: list[UUID] = Field(default_factory=list)


class RunResumed(Event):
    """Every child the parked attempt awaited has ended: the next attempt is dispatched."""

    type: ClassVar[str] = "RunResumed"
    attempt: int
    step_key: str


class CancelRequested(Event):
    type: ClassVar[str] = "CancelRequested"
    reason: str | None = None


class RunSucceeded(Event):
    type: ClassVar[str] = "RunSucceeded"
    attempt: int
    result: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)


class RunFailed(Event):
    type: ClassVar[str] = "RunFailed"
    attempt: int
    error_code: ErrorCode
    error: str
    reason: str | None = None


class RunCanceled(Event):
    type: ClassVar[str] = "RunCanceled"
    attempt: int
    reason: str | None = None


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        RunCreated,
        RunStarted,
        ProgressReported,
        StepStarted,
        StepFinished,
        UsageRecorded,
        CheckpointRecorded,
        AttemptFailed,
        AttemptLost,
        RunParked,
        RunResumed,
        CancelRequested,
        RunSucceeded,
        RunFailed,
        RunCanceled,
    )
}

# ---- schedule events --------------------------------------------------------------------------------
# A recurring schedule's stream (orchestrator.store.schedules). They share the log, not the run lifecycle:
# `EVENT_TYPES` stays the run events, and the run projections skip these.


class ScheduleCreated(Event):
    type: ClassVar[str] = "ScheduleCreated"
    schedule_id: UUID
    tenant_id: str
    name: str
    cron: str
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    task: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    priority: int = 0
    missed: Literal["skip", "catch_up_one"] = "skip"
    enabled: bool = True


class ScheduleUpdated(Event):
    type: ClassVar[str] = "ScheduleUpdated"
    enabled: bool


class ScheduleDeleted(Event):
    type: ClassVar[str] = "ScheduleDeleted"


class ScheduleFired(Event):
    type: ClassVar[str] = "ScheduleFired"
    run_id: UUID
    due_at: datetime


class ScheduleSkipped(Event):
    """Slots that were due and did not fire: `missed` of them, the latest at `due_at`."""

    type: ClassVar[str] = "ScheduleSkipped"
    missed: int
    due_at: datetime


SCHEDULE_EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (ScheduleCreated, ScheduleUpdated, ScheduleDeleted, ScheduleFired, ScheduleSkipped)
}

TERMINAL_EVENT_TYPES = frozenset({RunSucceeded.type, RunFailed.type, RunCanceled.type})


def event_from_stored(event_type: str, data: dict[str, Any]) -> Event:
    """Rebuild a typed event from its stored type name and JSON data."""
    return (EVENT_TYPES.get(event_type) or SCHEDULE_EVENT_TYPES[event_type]).model_validate(data)


def event_to_stored(event: Event) -> dict[str, Any]:
    return event.model_dump(mode="json")
