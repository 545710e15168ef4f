"""Read-model records -> canonical API views."""

from __future__ import annotations

from uuid import UUID

from orchestrator.projections.runs import RunRecord
from orchestrator.store.events import RecordedEvent
from schemas.api import EventView, RunView

# RunView names its fields after the run's columns; progress is shaped differently, and `retried_by` is
# looked up from other runs' rows (only a get by id does that).
_COPIED = tuple(name for name in RunView.model_fields if name not in ("progress", "retried_by"))


def run_view(run: RunRecord, retried_by: list[UUID] | None = None) -> RunView:
    row = run.as_row()
    progress = {"done": run.progress_done, "total": run.progress_total}
    copied = {name: row[name] for name in _COPIED}
    return RunView.model_validate({**copied, "progress": progress, "retried_by": retried_by})


def event_view(event: RecordedEvent) -> EventView:
    return EventView.model_validate(event, from_attributes=True)
