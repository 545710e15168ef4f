"""Bodies of the canonical API (/v1/runs). Write models forbid unknown fields; read models are separate."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from schemas.runs import ErrorCode, RunStatus

# PostgreSQL text and jsonb cannot hold a NUL character: every string that may reach the database says so
# in its schema (`pattern`), so such input is a 422 and never a database error. Pydantic already refuses
# strings that are not Unicode (unpaired surrogates).
NO_NUL = r"^[^\x00]*$"

MIN_PRIORITY, MAX_PRIORITY = 0, 9


def storable_json(value: Any) -> Any:
    """`value` if jsonb can store it: no NUL character and no unpaired surrogate in any key or string, and
    no NaN or infinity (which Python's JSON parser accepts and JSON does not). Iterative, so any nesting
    the request guard lets through is fine."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                raise ValueError("strings must not contain NUL characters")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("strings must be valid Unicode (no unpaired surrogates)") from None
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError("numbers must be finite")
    return value


# A free-form JSON object stored as given (params, context): refused (422) when jsonb cannot hold it.
JsonObject = Annotated[dict[str, Any], AfterValidator(storable_json)]
Labels = Annotated[dict[str, str], AfterValidator(storable_json)]


class RunCreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(min_length=1, max_length=64, pattern=NO_NUL, description="Job kind, e.g. `sleep`.")
    params: JsonObject = Field(default_factory=dict, description="Kind-specific parameters.")
    parent_run_id: UUID | None = Field(default=None, description="Makes this run a child of that run.")
    task: str | None = Field(default=None, max_length=255, pattern=NO_NUL)
    labels: Labels = Field(default_factory=dict, max_length=32)
    priority: int = Field(
        default=0, ge=MIN_PRIORITY, le=MAX_PRIORITY, description="Higher runs first within the tenant."
    )
    not_before: AwareDatetime | None = Field(
        default=None,
        description="Not dispatched before this time (with a time zone); the run stays `pending` until "
        "then. A past time is due at once; at most ORCH_MAX_DELAY_SECONDS ahead.",
    )


MAX_BATCH_RUNS = 1000


class RunBatchItem(RunCreateRequest):
    idempotency_key: str | None = Field(
        default=None,
        max_length=255,
        pattern=NO_NUL,
        description="This item's own idempotency key: a retried batch answers the run it created.",
    )


class RunBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    runs: list[RunBatchItem] = Field(min_length=1, max_length=MAX_BATCH_RUNS)


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
    # Defaults, so a client reading an older server's runs still parses them.
    priority: int = 0
    not_before: datetime | None = None
    retry_of: UUID | None = Field(default=None, description="The run this one retries, if it is a retry.")
    retried_by: list[UUID] | None = Field(
        default=None,
        description="The runs that retry this one, oldest first, on a get by id of a failed or canceled run; "
        "null elsewhere (lists, write answers, runs that cannot be retried).",
    )


class RunPage(BaseModel):
    data: list[RunView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class RunCounts(BaseModel):
    """The tenant's runs per status, from the read model's counters (every status present, 0 where none)."""

    data: dict[RunStatus, int]
    total: int


MAX_ACTIVITY_MINUTES = 1440


class ActivityMinute(BaseModel):
    """One minute of the tenant's runs: how many started, how many ended in each terminal status, and the
    queue wait (seconds from due, `created_at` or a later `not_before`, to the first start) of those that
    started in it."""

    minute: datetime = Field(description="The minute's start.")
    started: int
    succeeded: int
    failed: int
    canceled: int
    queue_wait_p50: float | None = Field(description="Seconds; null in a minute where no run started.")
    queue_wait_p95: float | None = Field(description="Seconds; null in a minute where no run started.")


class RunActivity(BaseModel):
    """The last `minutes` minutes, oldest first; the last one is the current minute, still filling."""

    minutes: int
    as_of: datetime = Field(
        description="The database's time of the read: events recorded after it are in none of the minutes "
        "(a live client adds those itself)."
    )
    data: list[ActivityMinute]


class RunBatchResponse(BaseModel):
    """The batch's runs in request order; `created[i]` is false where item i's key answered an earlier run."""

    data: list[RunView]
    created: list[bool]


MAX_BULK_CANCEL = 1000
BulkCancelOutcome = Literal[
    "canceled", "cancel_requested", "already_canceled", "already_finished", "not_found", "contended"
]


class BulkCancelRequest(BaseModel):
    """The filters of `GET /v1/runs`, as a body. Only live runs match (pending or running, cancel not yet
    asked), so calling again with the same filters makes progress until `more` is false."""

    model_config = ConfigDict(extra="forbid")
    status: Literal[RunStatus.PENDING, RunStatus.RUNNING] | None = None
    kind: str | None = Field(default=None, max_length=64, pattern=NO_NUL)
    parent_id: UUID | None = None
    root_only: bool = False
    created_after: datetime | None = None
    created_before: datetime | None = None
    limit: int = Field(
        default=MAX_BULK_CANCEL, ge=1, le=MAX_BULK_CANCEL, description="Runs this call cancels."
    )


class BulkCancelItem(BaseModel):
    run_id: UUID
    outcome: BulkCancelOutcome = Field(
        description="canceled: it was pending; cancel_requested: it is running and stops at its next "
        "checkpoint; already_canceled: a cascade (or a cancel the read model has not shown yet) got there "
        "first; "
        "already_finished: it ended meanwhile; not_found: it is gone; contended: it kept changing, ask again"
    )


class BulkCancelResponse(BaseModel):
    data: list[BulkCancelItem] = Field(description="One outcome per run this call canceled, newest first.")
    matched: int = Field(description="Live runs that matched the filters when the call started.")
    more: bool = Field(description="Whether matching runs remain beyond this call's `limit`.")


class EventView(BaseModel):
    """One event of a run's log, the same in `GET /v1/runs/{id}/events` and in every SSE `data:` line."""

    model_config = ConfigDict(from_attributes=True)  # built straight from the store's recorded events

    position: int = Field(description="Global, commit-ordered position in the log.")
    version: int = Field(description="1-based version within the run's stream.")
    type: str = Field(description="The event type, e.g. `RunStarted`.")
    data: dict[str, Any] = Field(description="The event's fields.")
    recorded_at: datetime = Field(description="When the event was appended.")


class EventList(BaseModel):
    data: list[EventView]


class ErrorBody(BaseModel):
    detail: str
    error_code: str


class Health(BaseModel):
    status: Literal["ok"]


CheckStatus = Literal["ok", "unavailable"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, CheckStatus] = Field(description="`database` and `broker`.")


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    detail: list[ValidationErrorItem]
