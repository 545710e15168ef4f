"""The `runs` read model: one row per run, for lists, detail pages and every public surface.

Every value comes from the event and its recorded_at, never from the clock, so a rebuild from
position 0 reproduces the rows exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

from orchestrator.domain.state import SHUTDOWN_REASON
from orchestrator.store.events import RecordedEvent
from orchestrator.store.schema import runs

NAME = "runs"

Handler = Callable[[RecordedEvent], dict[str, Any]]


def _started(event: RecordedEvent) -> dict[str, Any]:
    return {
        "status": "running",
        "attempt": event.data["attempt"],
        "started_at": sa.func.coalesce(runs.c.started_at, event.recorded_at),
        "retry_at": None,
        "error_code": None,
        "error": None,
    }


def _progress(event: RecordedEvent) -> dict[str, Any]:
    counts = event.data.get("counts") or {}
    return {
        "progress_done": event.data["done"],
        "progress_total": event.data.get("total"),
        "counts": runs.c.counts.op("||")(sa.cast(counts, JSONB)),
    }


def _attempt_failed(event: RecordedEvent) -> dict[str, Any]:
    return {
        "retry_at": event.data["retry_at"],
        "error_code": event.data["error_code"],
        "error": event.data["error"],
    }


def _attempt_lost(event: RecordedEvent) -> dict[str, Any]:
    values: dict[str, Any] = {"retry_at": event.data.get("retry_at")}
    if event.data.get("reason") == SHUTDOWN_REASON:  # as the domain counts it (state.evolve)
        values["max_attempts"] = runs.c.max_attempts + 1
    return values


def _cancel_requested(event: RecordedEvent) -> dict[str, Any]:
    return {"cancel_requested": True}


def _succeeded(event: RecordedEvent) -> dict[str, Any]:
    return {
        "status": "succeeded",
        "finished_at": event.recorded_at,
        "result": sa.cast(event.data.get("result") or {}, JSONB),
        "metrics": sa.cast(event.data.get("metrics") or {}, JSONB),
        "retry_at": None,
        "error_code": None,
        "error": None,
    }


def _failed(event: RecordedEvent) -> dict[str, Any]:
    return {
        "status": "failed",
        "finished_at": event.recorded_at,
        "error_code": event.data["error_code"],
        "error": event.data["error"],
        "retry_at": None,
    }


def _canceled(event: RecordedEvent) -> dict[str, Any]:
    return {"status": "canceled", "finished_at": event.recorded_at, "retry_at": None}


def _usage(event: RecordedEvent) -> dict[str, Any]:
    d = event.data
    return {
        "usage_input_tokens": runs.c.usage_input_tokens + d.get("input_tokens", 0),
        "usage_output_tokens": runs.c.usage_output_tokens + d.get("output_tokens", 0),
        "usage_cached_input_tokens": runs.c.usage_cached_input_tokens + d.get("cached_input_tokens", 0),
        "usage_cache_write_tokens": runs.c.usage_cache_write_tokens + d.get("cache_write_tokens", 0),
        "usage_cost": runs.c.usage_cost + sa.cast(d.get("cost", "0"), sa.Numeric),
    }


def _unchanged(event: RecordedEvent) -> dict[str, Any]:
    return {}


HANDLERS: dict[str, Handler] = {
    "RunStarted": _started,
    "ProgressReported": _progress,
    "StepStarted": _unchanged,
    "StepFinished": _unchanged,
    "UsageRecorded": _usage,
    "AttemptFailed": _attempt_failed,
    "AttemptLost": _attempt_lost,
    "CancelRequested": _cancel_requested,
    "RunSucceeded": _succeeded,
    "RunFailed": _failed,
    "RunCanceled": _canceled,
}


def apply(conn: Connection, event: RecordedEvent) -> None:
    if event.type == "RunCreated":
        _insert(conn, event)
        return
    handler = HANDLERS.get(event.type, _unchanged)
    values = handler(event)
    values.update(
        event_count=runs.c.event_count + 1, last_position=event.position, updated_at=event.recorded_at
    )
    conn.execute(runs.update().where(runs.c.id == event.stream_id).values(**values))


def _insert(conn: Connection, event: RecordedEvent) -> None:
    data = event.data
    conn.execute(
        runs.insert().values(
            id=event.stream_id,
            tenant_id=event.tenant_id,
            kind=data["kind"],
            task=data.get("task"),
            status="pending",
            parent_id=data.get("parent_id"),
            root_id=data.get("root_id") or event.stream_id,
            depth=data.get("depth", 0),
            attempt=0,
            max_attempts=data.get("max_attempts", 3),
            cancel_requested=False,
            progress_done=0,
            counts={},
            params=data.get("params") or {},
            labels=data.get("labels") or {},
            attributes=data.get("attributes") or {},
            metrics={},
            event_count=1,
            last_position=event.position,
            created_at=event.recorded_at,
            updated_at=event.recorded_at,
        )
    )


def reset(conn: Connection) -> None:
    conn.execute(runs.delete())
