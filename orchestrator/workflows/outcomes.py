"""How child runs ended, from their own events: what a workflow's `join` step reports. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

from orchestrator.domain.lifecycle import is_terminal
from orchestrator.domain.state import fold
from schemas.events import Event, RunFailed, RunSucceeded, UsageRecorded

USAGE_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens")


@dataclass(frozen=True)
class ChildOutcome:
    run_id: UUID
    status: str  # a RunStatus value; "missing" for an id with no run (never expected)
    ended: bool
    result: dict[str, Any] | None = None
    error: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)


def summarize(run_id: UUID, events: Iterable[Event]) -> ChildOutcome:
    stream = list(events)
    if not stream:
        return ChildOutcome(run_id, "missing", True)
    state = fold(stream)
    assert state.status is not None
    result = next((e.result for e in stream if isinstance(e, RunSucceeded)), None)
    error = next((e.error for e in stream if isinstance(e, RunFailed)), None)
    return ChildOutcome(
        run_id, state.status.value, is_terminal(state.status), result, error, usage_of(stream)
    )


def usage_of(events: Iterable[Event]) -> dict[str, Any]:
    """Summed usage of the UsageRecorded events among `events`; cost as a decimal string."""
    totals = dict.fromkeys(USAGE_FIELDS, 0)
    cost = Decimal(0)
    for event in events:
        if isinstance(event, UsageRecorded):
            for name in USAGE_FIELDS:
                totals[name] += getattr(event, name)
            cost += Decimal(event.cost)
    return {**totals, "cost": format(cost, "f")}
