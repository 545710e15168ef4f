"""Runs one delivery of one attempt: start it (or drop it), keep its lease, record how it ended.

Deliveries are at least once. Only the next attempt of a live run may start, so a duplicate or stale
message is acknowledged and dropped; every later write names the attempt, so a zombie cannot write.
"""

from __future__ import annotations

import contextvars
import os
import threading
from datetime import UTC, datetime
from uuid import UUID

import structlog

from orchestrator import correlation
from orchestrator.domain.commands import (
    Command,
    ConfirmCancel,
    Fail,
    FailAttempt,
    LoseAttempt,
    ParkAttempt,
    Succeed,
)
from orchestrator.domain.errors import DomainError
from orchestrator.domain.state import SHUTDOWN_REASON, RunState
from orchestrator.services import RunService
from schemas.jobs import JOB_KINDS
from schemas.runs import ErrorCode
from workers import shutdown
from workers.context import JobContext
from workers.errors import AttemptSuperseded, JobCanceled, JobError, JobParked, RetryableJobError
from workers.jobs import handler_for
from workers.resilience import TRANSIENT, retried

log = structlog.get_logger(__name__)


class LeaseKeeper(threading.Thread):
    """Renews the attempt's lease in the background. When the lease is gone (the run was canceled past
    its grace period, or the attempt was declared lost) the job is told to stop at its next checkpoint;
    a job that does not reach one soon is terminated with its process, so a zombie never runs on."""

    def __init__(self, service: RunService, ctx: JobContext, every: float) -> None:
        super().__init__(daemon=True, name=f"lease-{ctx.run_id}")
        self.service, self.ctx, self.every = service, ctx, every
        self.stopped = threading.Event()
        # A thread starts with an empty context: carry the attempt's (request id, run, tenant) over, so
        # this thread's log lines name them as well.
        self.context = contextvars.copy_context()

    def run(self) -> None:
        self.context.run(self._keep)

    def _keep(self) -> None:
        while not self.stopped.wait(self.every):
            try:
                if not self.service.renew_lease(self.ctx.run_id, self.ctx.attempt):
                    self.ctx.lease_lost = True
                    break
            except Exception:  # a database blip: try again next period; the lease is 6x longer
                log.warning("lease.renew_failed", run_id=str(self.ctx.run_id))
        else:
            return
        if not self.stopped.wait(self.every * 2) and shutdown.in_pool_child:
            log.warning("attempt.terminated", run_id=str(self.ctx.run_id), attempt=self.ctx.attempt)
            os._exit(70)

    def stop(self) -> None:
        self.stopped.set()


def execute(
    service: RunService, run_id: UUID, attempt: int, worker: str, request_id: str | None = None
) -> str:
    """Returns what happened: dropped, succeeded, failed, retrying, canceled or superseded.

    The delivery's request id, run and attempt (and the tenant once known) are bound for its whole
    course: every log line of it, the job's and the libraries' included, names them, and every event it
    appends records the request id."""
    with correlation.bound(request_id, run_id=str(run_id), attempt=attempt):
        return _execute(service, run_id, attempt, worker)


def _execute(service: RunService, run_id: UUID, attempt: int, worker: str) -> str:
    try:
        started = retried(lambda: service.start_attempt(run_id, attempt, worker), 5.0)  # a blip
    except TRANSIENT as exc:
        # The database stayed away: nothing started, so the reconciler publishes this dispatch again
        # once it is overdue. One line, and no exception for Celery to log with its SQL.
        code = ErrorCode.SERVICE_UNAVAILABLE.value
        log.warning("attempt.start_failed", error_code=code, error_type=type(exc).__name__)
        return "dropped"
    if started is None:
        log.info("delivery.dropped")
        return "dropped"
    state = started.state
    with structlog.contextvars.bound_contextvars(tenant_id=state.tenant_id, kind=state.kind):
        return _attempt(service, state, run_id, attempt, worker)


def _attempt(service: RunService, state: RunState, run_id: UUID, attempt: int, worker: str) -> str:
    ctx = JobContext(
        service,
        run_id,
        attempt,
        resume_from=state.checkpoint,
        tenant_id=state.tenant_id,
        attributes=state.attributes,
    )
    keeper = LeaseKeeper(service, ctx, service.settings.lease_renew_seconds)
    keeper.start()
    shutdown.set_executing(True)
    try:
        command, outcome = _run_job(ctx, state.kind, state.params, service)
    except shutdown.WorkerShuttingDown:
        # Give the attempt back now rather than after a lease: the next attempt is due at once.
        command, outcome = LoseAttempt(attempt, SHUTDOWN_REASON, datetime.now(UTC)), "interrupted"
    finally:
        shutdown.set_executing(False)
    try:
        if command is None:
            log.warning("attempt.superseded")
            return outcome
        # The lease is still renewed while this write is retried, so the run is not taken over.
        end = command
        retried(lambda: service.execute(run_id, end, actor=worker), service.settings.lease_seconds)
    except DomainError as exc:
        log.warning("attempt.end_rejected", reason=str(exc))
        return "superseded"
    finally:
        keeper.stop()
    log.info("attempt.ended", outcome=outcome)
    if outcome == "interrupted":
        shutdown.exit_after_interrupt()
    return outcome


def _run_job(
    ctx: JobContext, kind: str, params: dict[str, object], service: RunService
) -> tuple[Command | None, str]:
    attempt = ctx.attempt
    handler = handler_for(kind)
    if handler is None:
        return Fail(
            attempt, ErrorCode.SERVICE_UNAVAILABLE, f"no worker for kind {kind!r} is deployed"
        ), "failed"
    try:
        result = handler(ctx, JOB_KINDS[kind].params_model.model_validate(params))
    except JobCanceled:
        return ConfirmCancel(attempt), "canceled"
    except JobParked as parked:
        return ParkAttempt(attempt, parked.step_key, parked.awaiting), "parked"
    except AttemptSuperseded:
        return None, "superseded"
    except TRANSIENT:
        # The database stayed away longer than the job's own retries: try again in a new attempt.
        message = "database unavailable during the run"
        return FailAttempt(
            attempt, ErrorCode.SERVICE_UNAVAILABLE, message, service.next_retry_at(attempt)
        ), "retrying"
    except RetryableJobError as exc:
        return FailAttempt(attempt, exc.code, exc.message, service.next_retry_at(attempt)), "retrying"
    except JobError as exc:
        return Fail(attempt, exc.code, exc.message), "failed"
    except Exception as exc:
        # The message may hold SQL, paths or secrets: record only the exception's type.
        log.exception("job.crashed", run_id=str(ctx.run_id))
        return Fail(attempt, ErrorCode.INTERNAL_ERROR, f"job crashed ({type(exc).__name__})"), "failed"
    return Succeed(attempt, result or {}, metrics=dict(ctx.metrics)), "succeeded"
