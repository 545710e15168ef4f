"""Repairs what the broker loses. PostgreSQL holds the truth, so every pass re-derives what is owed:

- a running attempt whose lease expired lost its worker: AttemptLost, then a new attempt or failure;
- a dispatch that was published but never started within the dispatch timeout is published again;
- a parked run (a workflow waiting for its children) whose awaited children have all ended is resumed. The
  children's own terminal writes resume it; this is the safety net. A parked run holds no lease, so it is
  never taken for a lost attempt;
- when a retention period is set, finished run trees older than it are deleted (processes.retention);
- recurring schedules fire when due (processes.scheduler), in a thread of their own.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from uuid import UUID

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine

from orchestrator.domain.commands import ForceCancel, LoseAttempt
from orchestrator.domain.errors import DomainError
from orchestrator.processes import retention, scheduler
from orchestrator.processes.broker import QueueDepth
from orchestrator.services import RunNotFound, RunService
from orchestrator.store import children, leases, outbox
from orchestrator.store.schema import dispatch_slots, events, run_leases
from orchestrator.store.schema import outbox as outbox_table
from schemas.events import TERMINAL_EVENT_TYPES, CancelRequested, RunStarted

log = structlog.get_logger(__name__)

TERMINAL_TYPES = sorted(TERMINAL_EVENT_TYPES)


@dataclass(frozen=True)
class PassReport:
    lost_attempts: int
    redispatched: int
    forced_cancels: int
    pruned: int
    resumed: int = 0


def recover_expired_leases(service: RunService) -> int:
    with service.engine.connect() as conn:
        expired = leases.expired(conn)
    recovered = 0
    for lease in expired:
        command = LoseAttempt(lease.attempt, "worker_lost", service.next_retry_at(lease.attempt))
        try:
            service.execute(lease.run_id, command, actor="reconciler")
            recovered += 1
            log.warning("reconciler.attempt_lost", run_id=str(lease.run_id), attempt=lease.attempt)
        except (DomainError, RunNotFound):
            # The attempt already ended or moved on; the lease row is just stale.
            with service.engine.begin() as conn:
                leases.release(conn, lease.run_id, attempt=lease.attempt)
    return recovered


# A message may be lost, or only waiting behind long runs: each re-dispatch of the same attempt waits
# twice as long as the one before (capped), so a busy queue is not flooded with copies.
MAX_REDISPATCH_WAIT_SECONDS = 3600.0


@dataclass(frozen=True)
class StalledDispatch:
    run_id: UUID
    tenant_id: str
    attempt: int
    queue: str
    kind: str
    priority: int
    request_id: str | None
    trace_context: dict[str, str] | None


def _stalled_dispatches(engine: Engine, timeout_seconds: float) -> list[StalledDispatch]:
    o, newer, same = outbox_table.alias("o"), outbox_table.alias("newer"), outbox_table.alias("same")
    dispatches = (
        sa.select(sa.func.count())
        .where(same.c.run_id == o.c.run_id, same.c.attempt == o.c.attempt)
        .scalar_subquery()
    )
    wait = sa.func.least(MAX_REDISPATCH_WAIT_SECONDS, timeout_seconds * sa.func.power(2, dispatches - 1))
    cutoff = sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, wait)
    started_or_done = sa.exists().where(
        events.c.stream_id == o.c.run_id,
        sa.or_(
            events.c.type.in_(TERMINAL_TYPES),
            sa.and_(events.c.type == RunStarted.type, events.c.data["attempt"].as_integer() >= o.c.attempt),
        ),
    )
    query = (
        sa.select(
            o.c.run_id,
            o.c.tenant_id,
            o.c.attempt,
            o.c.queue,
            o.c.kind,
            o.c.priority,
            o.c.request_id,
            o.c.trace_context,
        )
        .where(
            o.c.sent_at < cutoff,
            ~sa.exists().where(newer.c.run_id == o.c.run_id, newer.c.id > o.c.id),
            ~started_or_done,
        )
        .order_by(o.c.sent_at)  # oldest first, so a large backlog cannot starve anyone
        .limit(200)
    )
    with engine.connect() as conn:
        return [StalledDispatch(*row) for row in conn.execute(query)]


def prune_outbox(engine: Engine, keep_seconds: float = 3600.0) -> int:
    """Sent rows of finished runs are history the log already has; keep the table small."""
    finished = sa.exists().where(
        events.c.stream_id == outbox_table.c.run_id, events.c.type.in_(TERMINAL_TYPES)
    )
    cutoff = sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, keep_seconds)
    batch = sa.select(outbox_table.c.id).where(outbox_table.c.sent_at < cutoff, finished).limit(5000)
    with engine.begin() as conn:
        return conn.execute(
            outbox_table.delete().where(outbox_table.c.id.in_(batch.scalar_subquery()))
        ).rowcount


def prune_slots(engine: Engine) -> int:
    """Slots of finished runs. The write path gives a slot back when the run ends; this only catches one a
    crash or a race left behind, so a tenant's limit is never worn down for good."""
    finished = sa.exists().where(
        events.c.stream_id == dispatch_slots.c.run_id, events.c.type.in_(TERMINAL_TYPES)
    )
    with engine.begin() as conn:
        return conn.execute(dispatch_slots.delete().where(finished)).rowcount


def redispatch_stalled(service: RunService, depth: QueueDepth | None = None) -> int:
    """Publish again the dispatches that never started. A busy queue is not a lost dispatch: while the
    broker still holds at least as many waiting messages on a queue as there are stalled dispatches for
    it, they may all be waiting their turn, and copies would only multiply the backlog. When it holds
    fewer (a flush, a broker that lost its data), some were lost, and all of them are published again;
    the copies of those still queued are dropped by the workers' attempt check."""
    stalled = _stalled_dispatches(service.engine, service.settings.dispatch_timeout_seconds)
    per_queue = Counter(dispatch.queue for dispatch in stalled)
    waiting = {queue: depth(queue) if depth else None for queue in per_queue}
    deferred = {queue for queue, held in waiting.items() if held is not None and held >= per_queue[queue]}
    for queue in deferred:
        log.info("reconciler.backlog", queue=queue, waiting=waiting[queue], stalled=per_queue[queue])
    redispatched = 0
    for d in stalled:
        if d.queue in deferred:
            continue
        with service.engine.begin() as conn:
            # The copy keeps the request id of the dispatch it replaces: the attempt still logs it.
            outbox.enqueue(
                conn,
                d.run_id,
                d.tenant_id,
                d.attempt,
                d.queue,
                kind=d.kind,
                priority=d.priority,
                request_id=d.request_id,
                trace_context=d.trace_context,
            )
        redispatched += 1
        log.warning(
            "reconciler.redispatched", run_id=str(d.run_id), attempt=d.attempt, request_id=d.request_id
        )
    return redispatched


def _overdue_cancels(engine: Engine, grace_seconds: float) -> list[UUID]:
    """Runs still executing (they hold a lease) whose cancel was requested longer ago than the grace period.

    Read from the write side only, the leases and the log, never from a read model: a projector that is
    behind or down must not delay a guaranteed cancel. Leases are few (one per running attempt), and each
    test below is an index lookup on the run's stream."""
    cutoff = sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, grace_seconds)
    run_id = run_leases.c.run_id
    finished = sa.exists().where(events.c.stream_id == run_id, events.c.type.in_(TERMINAL_TYPES))
    requested_before = sa.exists().where(
        events.c.stream_id == run_id, events.c.type == CancelRequested.type, events.c.recorded_at < cutoff
    )
    query = sa.select(run_id).where(requested_before, ~finished).limit(200)
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(query)]


def force_overdue_cancels(service: RunService) -> int:
    """A cancel has a guaranteed outcome: past the grace period the run ends canceled anyway, and the
    worker, whose lease is released with it, stops or is terminated."""
    forced = 0
    for run_id in _overdue_cancels(service.engine, service.settings.cancel_grace_seconds):
        try:
            service.execute(run_id, ForceCancel(), actor="reconciler")
            forced += 1
            log.warning("reconciler.cancel_forced", run_id=str(run_id))
        except (DomainError, RunNotFound):
            pass
    return forced


def resume_ready_parked(service: RunService) -> int:
    with service.engine.connect() as conn:
        parked = children.parked_runs(conn)
    resumed = 0
    for run_id, tenant_id in parked:
        if service.resume_parked(run_id, tenant_id):
            resumed += 1
            log.warning("reconciler.parked_run_resumed", run_id=str(run_id))
    return resumed


def reconcile_once(service: RunService, depth: QueueDepth | None = None) -> PassReport:
    return PassReport(
        recover_expired_leases(service),
        redispatch_stalled(service, depth),
        force_overdue_cancels(service),
        prune_outbox(service.engine) + prune_slots(service.engine),
        resume_ready_parked(service),
    )


def run_reconciler(service: RunService, stop: threading.Event, depth: QueueDepth | None = None) -> None:
    """A pass every reconcile interval; with a retention period set, retention sweeps in a thread of its own,
    so a long first sweep never holds up lease recovery. The scheduler ticks in another thread, on its own
    (shorter) interval: a schedule fires on time however long a reconcile pass takes."""
    log.info("reconciler.active", every=service.settings.reconcile_interval_seconds)
    ended = threading.Event()  # the retention thread ends with this loop, however it ends
    if retention.configured(service.settings):
        args = (service.engine, service.settings, ended)
        threading.Thread(target=retention.run_retention, args=args, name="retention", daemon=True).start()
    threading.Thread(
        target=scheduler.run_scheduler, args=(service, ended), name="scheduler", daemon=True
    ).start()
    try:
        while not stop.is_set():
            try:
                report = reconcile_once(service, depth)
                # Pruning is routine: a pass that only pruned is not worth a line.
                if report.lost_attempts or report.redispatched or report.forced_cancels or report.resumed:
                    log.info("reconciler.pass", **report.__dict__)
            except Exception as exc:  # the next pass retries; one bad pass must not kill the role
                log.error("reconciler.pass_failed", error_type=type(exc).__name__)
            stop.wait(service.settings.reconcile_interval_seconds)
    finally:
        ended.set()
