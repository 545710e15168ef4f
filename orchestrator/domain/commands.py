"""Commands: what a caller asks of a run. `decide` turns them into events or a domain error."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from schemas.runs import ErrorCode


@dataclass(frozen=True)
class CreateRun:
    run_id: UUID
    tenant_id: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    task: str | None = None
    parent_id: UUID | None = None
    root_id: UUID | None = None
    depth: int = 0
    max_attempts: int = 3
    labels: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    not_before: datetime | None = None
    retry_of: UUID | None = None


@dataclass(frozen=True)
class StartAttempt:
    attempt: int
    worker: str | None = None


@dataclass(frozen=True)
class ReportProgress:
    attempt: int
    done: int
    total: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    message: str | None = None


@dataclass(frozen=True)
class StartStep:
    attempt: int
    step_key: str
    sequence: int
    tool_name: str | None = None
    input: dict[str, Any] = field(default_factory=dict)
    tool_call_id: str | None = None


@dataclass(frozen=True)
class FinishStep:
    attempt: int
    step_key: str
    sequence: int
    status: str = "succeeded"
    output: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    duration_ms: int | None = None


@dataclass(frozen=True)
class RecordUsage:
    attempt: int
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cost: str = "0"


@dataclass(frozen=True)
class RecordCheckpoint:
    attempt: int
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Succeed:
    attempt: int
    result: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fail:
    attempt: int
    error_code: ErrorCode
    error: str
    reason: str | None = None


@dataclass(frozen=True)
class FailAttempt:
    """A retryable failure: retried at `retry_at` while attempts remain, else the run fails."""

    attempt: int
    error_code: ErrorCode
    error: str
    retry_at: datetime


@dataclass(frozen=True)
class LoseAttempt:
    """The reconciler found the attempt's worker gone."""

    attempt: int
    reason: str
    retry_at: datetime


@dataclass(frozen=True)
class ParkAttempt:
    """End the attempt to wait for child runs. `unfinished` is how many of `awaiting` had not ended when the
    parent's stream lock was taken: the write path counts them, so the decision itself stays pure."""

    attempt: int
    step_key: str
    awaiting: tuple[UUID, ...]
    unfinished: int = -1  # not counted yet; the write path fills it in


@dataclass(frozen=True)
class Resume:
    """Every child the parked run awaited on `step_key` has ended: dispatch its next attempt."""

    step_key: str


@dataclass(frozen=True)
class Cancel:
    reason: str | None = None


@dataclass(frozen=True)
class ForceCancel:
    """The run did not honour a cancel request within the grace period: end it anyway."""

    reason: str = "cancel_grace_expired"


@dataclass(frozen=True)
class ConfirmCancel:
    """The worker stopped the attempt because a cancel was requested."""

    attempt: int


Command = (
    CreateRun
    | StartAttempt
    | ReportProgress
    | StartStep
    | FinishStep
    | RecordUsage
    | RecordCheckpoint
    | Succeed
    | Fail
    | FailAttempt
    | LoseAttempt
    | ParkAttempt
    | Resume
    | Cancel
    | ForceCancel
    | ConfirmCancel
)
