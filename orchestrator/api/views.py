"""Read-model records -> canonical API views."""

from __future__ import annotations

from orchestrator.projections.runs import RunRecord
from orchestrator.store.events import RecordedEvent
from schemas.api import EventView, RunView

# RunView names its fields after the run's columns; only progress is shaped differently.
_COPIED = tuple(name for name in RunView.model_fields if name != "progress")


def run_view(run: RunRecord) -> RunView:
    row = run.as_row()
    progress = {"done": run.progress_done, "total": run.progress_total}
    return RunView.model_validate({**{name: row[name] for name in _COPIED}, "progress": progress})


def event_view(event: RecordedEvent) -> EventView:
    return EventView.model_validate(event, from_attributes=True)
