"""Read-model records -> canonical API views."""

from __future__ import annotations

from orchestrator.projections.runs import RunRecord
from orchestrator.store.events import RecordedEvent
from schemas.api import EventView, Progress, RunView


def run_view(run: RunRecord) -> RunView:
    return RunView(
        id=run.id,
        tenant_id=run.tenant_id,
        kind=run.kind,
        task=run.task,
        status=run.status,
        error_code=run.error_code,
        error=run.error,
        parent_id=run.parent_id,
        root_id=run.root_id,
        depth=run.depth,
        attempt=run.attempt,
        max_attempts=run.max_attempts,
        cancel_requested=run.cancel_requested,
        retry_at=run.retry_at,
        progress=Progress(done=run.progress_done, total=run.progress_total),
        counts=dict(run.counts),
        params=dict(run.params),
        labels=dict(run.labels),
        metrics=dict(run.metrics),
        result=dict(run.result) if run.result is not None else None,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        updated_at=run.updated_at,
    )


def event_view(event: RecordedEvent) -> EventView:
    return EventView(
        position=event.position,
        version=event.version,
        type=event.type,
        data=event.data,
        recorded_at=event.recorded_at,
    )
