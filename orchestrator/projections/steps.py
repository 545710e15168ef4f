"""The `run_steps` read model: one row per step of each attempt, for run detail views."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

from orchestrator.store.events import RecordedEvent
from orchestrator.store.schema import run_steps

NAME = "steps"


def apply(conn: Connection, event: RecordedEvent) -> None:
    data = event.data
    if event.type == "StepStarted":
        conn.execute(
            run_steps.insert().values(
                run_id=event.stream_id,
                attempt=data["attempt"],
                sequence=data["sequence"],
                tenant_id=event.tenant_id,
                step_key=data["step_key"],
                tool_name=data.get("tool_name"),
                status="running",
                input=data.get("input") or {},
                started_at=event.recorded_at,
            )
        )
    elif event.type == "StepFinished":
        conn.execute(
            run_steps.update()
            .where(
                run_steps.c.run_id == event.stream_id,
                run_steps.c.attempt == data["attempt"],
                run_steps.c.sequence == data["sequence"],
            )
            .values(
                status=data.get("status", "succeeded"),
                output=sa.cast(data.get("output") or {}, JSONB),
                error=data.get("error"),
                duration_ms=data.get("duration_ms"),
                completed_at=event.recorded_at,
            )
        )


def reset(conn: Connection) -> None:
    conn.execute(run_steps.delete())
