"""The `runs` read model: one row per run, for lists, detail pages and every public surface.

The projection is a pure fold, `evolve(record, event) -> record`, over typed events. The projector runs it
over a batch and writes the rows it touched; a read of a run the projector has not reached yet runs the very
same fold over the run's stream (`fold`), so the two can never disagree. Every value comes from the events
and their `recorded_at`, never from the clock, so a rebuild from position 0 reproduces the rows exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from orchestrator.domain.lifecycle import STATUS_AFTER_EVENT
from orchestrator.domain.state import attempts_granted
from orchestrator.store.events import RecordedEvent
from orchestrator.store.schema import runs
from schemas import events as ev
from schemas.runs import RunStatus

NAME = "runs"


@dataclass(frozen=True)
class RunRecord:
    """One row of `runs`, field for column."""

    id: UUID
    tenant_id: str
    kind: str
    task: str | None
    status: RunStatus
    parent_id: UUID | None
    root_id: UUID
    depth: int
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    last_position: int
    event_count: int = 1
    attempt: int = 0
    error_code: str | None = None
    error: str | None = None
    cancel_requested: bool = False
    retry_at: datetime | None = None
    progress_done: int = 0
    progress_total: int | None = None
    counts: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, Any] = field(default_factory=dict)
    attributes: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    result: Mapping[str, Any] | None = None
    usage_input_tokens: int = 0
    usage_output_tokens: int = 0
    usage_cached_input_tokens: int = 0
    usage_cache_write_tokens: int = 0
    usage_cost: Decimal = Decimal(0)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    priority: int = 0
    not_before: datetime | None = None
    retry_of: UUID | None = None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> RunRecord:
        """A `runs` row (its mapping) as a record; the only place rows become records."""
        values = {name: row[name] for name in _FIELDS}
        return cls(**{**values, "status": RunStatus(values["status"])})

    def as_row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _FIELDS}

    @property
    def key(self) -> UUID:
        return self.id

    def count(self, name: str) -> int:
        """A count a job reported: merged progress counts win, a final `result` may carry the same name,
        and neither means 0. A value of another type (a job's own business) reads as 0 too."""
        for source in (self.counts, self.result or {}):
            value = source.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return int(value)
        return 0


_FIELDS = tuple(f.name for f in dataclasses.fields(RunRecord))
_FIELD_SET = frozenset(_FIELDS)


def _replace(run: RunRecord, **changes: Any) -> RunRecord:
    """`dataclasses.replace` without running `__init__` again: a record is copied twice per event, and
    the generated `__init__` with its defaults made that the fold's largest cost. Unknown names still fail."""
    if unknown := changes.keys() - _FIELD_SET:
        raise TypeError(f"RunRecord has no field {sorted(unknown)}")
    copy = object.__new__(RunRecord)
    copy.__dict__.update(run.__dict__, **changes)
    return copy


# Columns a run takes from its RunCreated event as they are.
_AS_CREATED = (
    "kind",
    "task",
    "parent_id",
    "depth",
    "max_attempts",
    "params",
    "labels",
    "attributes",
    "priority",
    "not_before",
    "retry_of",
)


def created(event: ev.RunCreated, recorded: RecordedEvent) -> RunRecord:
    """The row a run starts with: the one mapping of RunCreated to a run."""
    return RunRecord(
        **{name: getattr(event, name) for name in _AS_CREATED},
        id=recorded.stream_id,
        tenant_id=recorded.tenant_id,
        status=STATUS_AFTER_EVENT[ev.RunCreated.type],
        root_id=event.root_id or recorded.stream_id,
        created_at=recorded.recorded_at,
        updated_at=recorded.recorded_at,
        last_position=recorded.position,
    )


def _started(run: RunRecord, event: ev.RunStarted, at: datetime) -> RunRecord:
    return _replace(
        run,
        attempt=event.attempt,
        started_at=run.started_at or at,
        retry_at=None,
        error_code=None,
        error=None,
    )


def _progress(run: RunRecord, event: ev.ProgressReported, at: datetime) -> RunRecord:
    return _replace(
        run, progress_done=event.done, progress_total=event.total, counts={**run.counts, **event.counts}
    )


def _usage(run: RunRecord, event: ev.UsageRecorded, at: datetime) -> RunRecord:
    return _replace(
        run,
        usage_input_tokens=run.usage_input_tokens + event.input_tokens,
        usage_output_tokens=run.usage_output_tokens + event.output_tokens,
        usage_cached_input_tokens=run.usage_cached_input_tokens + event.cached_input_tokens,
        usage_cache_write_tokens=run.usage_cache_write_tokens + event.cache_write_tokens,
        usage_cost=run.usage_cost + Decimal(event.cost),
    )


def _attempt_failed(run: RunRecord, event: ev.AttemptFailed, at: datetime) -> RunRecord:
    return _replace(run, retry_at=event.retry_at, error_code=event.error_code, error=event.error)


def _attempt_lost(run: RunRecord, event: ev.AttemptLost, at: datetime) -> RunRecord:
    return _replace(run, retry_at=event.retry_at, max_attempts=run.max_attempts + attempts_granted(event))


def _parked(run: RunRecord, event: ev.RunParked, at: datetime) -> RunRecord:
    # As the write side does (domain.state.evolve): waiting for children does not use up an attempt.
    return _replace(run, max_attempts=run.max_attempts + 1)


def _cancel_requested(run: RunRecord, event: ev.CancelRequested, at: datetime) -> RunRecord:
    return _replace(run, cancel_requested=True)


def _succeeded(run: RunRecord, event: ev.RunSucceeded, at: datetime) -> RunRecord:
    return _replace(
        run,
        finished_at=at,
        result=event.result,
        metrics=event.metrics,
        retry_at=None,
        error_code=None,
        error=None,
    )


def _failed(run: RunRecord, event: ev.RunFailed, at: datetime) -> RunRecord:
    return _replace(run, finished_at=at, error_code=event.error_code, error=event.error, retry_at=None)


def _canceled(run: RunRecord, event: ev.RunCanceled, at: datetime) -> RunRecord:
    return _replace(run, finished_at=at, retry_at=None)


def _unchanged(run: RunRecord, event: ev.Event, at: datetime) -> RunRecord:
    return run


# What each event does to the row besides its status (the lifecycle table's) and bookkeeping. Every event
# type but RunCreated has an entry: tests/unit/test_projections.py fails for a new type without one.
HANDLERS: dict[type[ev.Event], Callable[[RunRecord, Any, datetime], RunRecord]] = {
    ev.RunStarted: _started,
    ev.ProgressReported: _progress,
    ev.StepStarted: _unchanged,
    ev.StepFinished: _unchanged,
    ev.UsageRecorded: _usage,
    ev.CheckpointRecorded: _unchanged,
    ev.AttemptFailed: _attempt_failed,
    ev.AttemptLost: _attempt_lost,
    ev.RunParked: _parked,
    ev.RunResumed: _unchanged,
    ev.CancelRequested: _cancel_requested,
    ev.RunSucceeded: _succeeded,
    ev.RunFailed: _failed,
    ev.RunCanceled: _canceled,
}


def evolve(run: RunRecord | None, recorded: RecordedEvent) -> RunRecord | None:
    """The row after one event. None stays None for events of a run whose RunCreated was never seen."""
    event = recorded.to_event()
    if isinstance(event, ev.RunCreated):
        return created(event, recorded)
    if run is None:
        return None
    changed = HANDLERS[type(event)](run, event, recorded.recorded_at)
    return _replace(
        changed,
        status=STATUS_AFTER_EVENT.get(event.type, changed.status),
        event_count=run.event_count + 1,
        last_position=recorded.position,
        updated_at=recorded.recorded_at,
    )


def fold(stream: Iterable[RecordedEvent]) -> RunRecord | None:
    """A run's row from its own stream: what the projector will show once it gets there."""
    run: RunRecord | None = None
    for recorded in stream:
        run = evolve(run, recorded)
    return run


# ---- what the projector needs: the table, its record, and which row an event touches -------------------


TABLE = runs
RECORD = RunRecord


def key(recorded: RecordedEvent) -> UUID | None:
    # A schedule's stream shares the log; it is not a run.
    return recorded.stream_id if recorded.type in ev.EVENT_TYPES else None
