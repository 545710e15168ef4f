"""What must commit with an event, beside it: the write path's side effects (see RunService).

A started attempt holds a lease; an attempt that ended without ending the run gives its lease back and,
when a retry is due, schedules the next dispatch; a parked run gives its lease back; a resumed one is
dispatched again; a child's end may resume its parked parent. Each runs in the transaction that appends
the event, so the two commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from orchestrator.domain.lifecycle import is_terminal
from orchestrator.domain.state import RunState
from orchestrator.store import leases, outbox
from schemas.events import (
    AttemptFailed,
    AttemptLost,
    Event,
    RunCanceled,
    RunFailed,
    RunParked,
    RunResumed,
    RunStarted,
    RunSucceeded,
)

if TYPE_CHECKING:
    from orchestrator.services import RunService

Policy = Callable[["RunService", Connection, RunState, Any], None]


def _grant_lease(service: RunService, conn: Connection, run: RunState, event: RunStarted) -> None:
    assert run.run_id is not None
    seconds = service.settings.lease_seconds
    leases.grant(conn, run.run_id, run.tenant_id, event.attempt, event.worker or "unknown", seconds)


def _schedule_retry(
    service: RunService, conn: Connection, run: RunState, event: AttemptFailed | AttemptLost
) -> None:
    assert run.run_id is not None and run.status is not None
    leases.release(conn, run.run_id)
    if event.retry_at is not None and not is_terminal(run.status):
        queue = service.queue_for(run.kind)
        outbox.enqueue(
            conn,
            run.run_id,
            run.tenant_id,
            event.attempt + 1,
            queue,
            event.retry_at,
            kind=run.kind,
            priority=run.priority,
        )


def _free_the_worker(service: RunService, conn: Connection, run: RunState, event: RunParked) -> None:
    # A parked run holds no lease, so the reconciler never takes its wait for a lost worker.
    assert run.run_id is not None
    leases.release(conn, run.run_id)


def _dispatch_next_attempt(service: RunService, conn: Connection, run: RunState, event: RunResumed) -> None:
    assert run.run_id is not None
    outbox.enqueue(
        conn,
        run.run_id,
        run.tenant_id,
        event.attempt + 1,
        service.queue_for(run.kind),
        kind=run.kind,
        priority=run.priority,
    )


def _resume_parent(
    service: RunService, conn: Connection, run: RunState, event: RunSucceeded | RunFailed | RunCanceled
) -> None:
    """A child's end may be the one its parked parent waits for: decided in the child's transaction, under
    the parent's stream lock, so of two children ending at once exactly the later one resumes it."""
    if run.parent_id is not None and run.run_id is not None:
        service.resume_if_ready(conn, run.parent_id, run.tenant_id, ended=run.run_id)


POLICIES: dict[type[Event], Policy] = {
    RunStarted: _grant_lease,
    AttemptFailed: _schedule_retry,
    AttemptLost: _schedule_retry,
    RunParked: _free_the_worker,
    RunResumed: _dispatch_next_attempt,
    RunSucceeded: _resume_parent,
    RunFailed: _resume_parent,
    RunCanceled: _resume_parent,
}
