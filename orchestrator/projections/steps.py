"""The `run_steps` read model: one row per step of each attempt, for run detail views.

A pure fold like the runs projection: `evolve(step, event)` over typed step events, keyed by
(run, attempt, sequence); `fold` gives a run's steps straight from its stream.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from orchestrator.store.events import RecordedEvent
from orchestrator.store.schema import run_steps
from schemas.events import StepFinished, StepStarted

NAME = "steps"

StepKey = tuple[UUID, int, int]  # run, attempt, sequence


@dataclass(frozen=True)
class StepRecord:
    """One row of `run_steps`, field for column."""

    run_id: UUID
    attempt: int
    sequence: int
    tenant_id: str
    step_key: str
    tool_name: str | None
    status: str
    started_at: datetime
    input: Mapping[str, Any] = field(default_factory=dict)
    output: Mapping[str, Any] | None = None
    error: str | None = None
    duration_ms: int | None = None
    completed_at: datetime | None = None
    tool_call_id: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> StepRecord:
        return cls(**{name: row[name] for name in _FIELDS})

    def as_row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _FIELDS}

    @property
    def key(self) -> StepKey:
        return (self.run_id, self.attempt, self.sequence)


_FIELDS = tuple(f.name for f in dataclasses.fields(StepRecord))
STEP_EVENT_TYPES = frozenset({StepStarted.type, StepFinished.type})
# Columns a step takes from its StepStarted event as they are.
_AS_STARTED = ("attempt", "sequence", "step_key", "tool_name", "input", "tool_call_id")
TABLE = run_steps
RECORD = StepRecord


def key(recorded: RecordedEvent) -> StepKey | None:
    """The step an event is about, or None for the events this projection does not fold."""
    if recorded.type not in STEP_EVENT_TYPES:
        return None
    return (recorded.stream_id, int(recorded.data["attempt"]), int(recorded.data["sequence"]))


def evolve(step: StepRecord | None, recorded: RecordedEvent) -> StepRecord | None:
    match recorded.to_event():
        case StepStarted() as started:
            return StepRecord(
                **{name: getattr(started, name) for name in _AS_STARTED},
                run_id=recorded.stream_id,
                tenant_id=recorded.tenant_id,
                status="running",
                started_at=recorded.recorded_at,
            )
        case StepFinished() as finished if step is not None:
            return replace(
                step,
                status=finished.status,
                output=finished.output,
                error=finished.error,
                duration_ms=finished.duration_ms,
                completed_at=recorded.recorded_at,
            )
    return step


def fold(stream: Iterable[RecordedEvent]) -> list[StepRecord]:
    """Every step of a run's stream, in (attempt, sequence) order."""
    steps: dict[StepKey, StepRecord] = {}
    for recorded in stream:
        step_key = key(recorded)
        if step_key is not None and (step := evolve(steps.get(step_key), recorded)) is not None:
            steps[step_key] = step
    return [steps[k] for k in sorted(steps, key=lambda k: (k[1], k[2]))]
