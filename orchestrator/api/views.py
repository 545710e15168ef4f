"""Read-model rows -> canonical API views."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from orchestrator.store.events import RecordedEvent
from schemas.api import EventView, Progress, RunView
from schemas.runs import RunStatus


def run_view(row: sa.Row[Any]) -> RunView:
    m = row._mapping
    return RunView(
        id=m["id"],
        tenant_id=m["tenant_id"],
        kind=m["kind"],
        task=m["task"],
        status=m["status"],
        error_code=m["error_code"],
        error=m["error"],
        parent_id=m["parent_id"],
        root_id=m["root_id"],
        depth=m["depth"],
        attempt=m["attempt"],
        max_attempts=m["max_attempts"],
        cancel_requested=m["cancel_requested"],
        retry_at=m["retry_at"],
        progress=Progress(done=m["progress_done"], total=m["progress_total"]),
        counts=m["counts"],
        params=m["params"],
        labels=m["labels"],
        metrics=m["metrics"],
        result=m["result"],
        created_at=m["created_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        updated_at=m["updated_at"],
    )


def created_view(event: RecordedEvent) -> RunView:
    """A just-created run, from its RunCreated event, for when the projection has not caught up yet."""
    data = event.data
    return RunView(
        id=event.stream_id,
        tenant_id=event.tenant_id,
        kind=data["kind"],
        task=data.get("task"),
        status=RunStatus.PENDING,
        error_code=None,
        error=None,
        parent_id=data.get("parent_id"),
        root_id=data.get("root_id") or event.stream_id,
        depth=data.get("depth", 0),
        attempt=0,
        max_attempts=data.get("max_attempts", 3),
        cancel_requested=False,
        retry_at=None,
        progress=Progress(done=0),
        counts={},
        params=data.get("params") or {},
        labels=data.get("labels") or {},
        metrics={},
        result=None,
        created_at=event.recorded_at,
        started_at=None,
        finished_at=None,
        updated_at=event.recorded_at,
    )


def event_view(row: sa.Row[Any]) -> EventView:
    m = row._mapping
    return EventView(
        position=m["position"],
        version=m["version"],
        type=m["type"],
        data=m["data"],
        recorded_at=m["recorded_at"],
    )
