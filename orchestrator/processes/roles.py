"""Long-running roles (relay, projector, reconciler) with clean shutdown on SIGINT/SIGTERM."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

import structlog
from sqlalchemy.engine import Engine

from orchestrator import correlation
from orchestrator.processes.broker import EXECUTE_RUN_TASK, make_celery, queue_depth
from orchestrator.processes.reconciler import run_reconciler
from orchestrator.processes.relay import DispatchCaps, Publisher, run_relay
from orchestrator.projections.runner import PROJECTIONS, Projection, run_projector
from orchestrator.services import RunService
from orchestrator.settings import Settings
from orchestrator.store.outbox import OutboxMessage

log = structlog.get_logger(__name__)


def stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def _handler(signum: int, _frame: object) -> None:
        log.info("role.stopping", signal=signum)
        stop.set()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    return stop


def keep_running(target: Callable[[threading.Event], None], name: str, stop: threading.Event) -> None:
    """Run a loop until stopped; a crash (say, the database restarting) restarts it after a pause."""
    while not stop.is_set():
        try:
            target(stop)
        except Exception as exc:
            log.error("role.crashed", role=name, error_type=type(exc).__name__)
            stop.wait(2.0)


def run_until_stopped(target: Callable[[threading.Event], None], name: str) -> None:
    keep_running(target, name, stop_on_signals())


def message_headers(message: OutboxMessage) -> dict[str, str]:
    """What a message carries besides its ids: the request id and, with tracing on, the trace context."""
    headers = dict(message.trace_context or {})
    if message.request_id:
        headers[correlation.MESSAGE_HEADER] = message.request_id
    return headers


def celery_publisher(settings: Settings) -> Publisher:
    app = make_celery(settings, settings.redis_url or "")

    def publish(message: OutboxMessage) -> None:
        # The request id rides as a message header: a worker that does not know it ignores it, where an
        # unknown task argument would fail the task.
        headers = message_headers(message) or None
        for _ in range(settings.relay_publish_copies):
            app.send_task(
                EXECUTE_RUN_TASK,
                kwargs={"run_id": str(message.run_id), "attempt": message.attempt, "outbox_id": message.id},
                queue=message.queue,
                headers=headers,
            )

    return publish


def relay(settings: Settings, engine: Engine) -> None:
    publish = celery_publisher(settings)
    url = settings.database_url or ""
    run_until_stopped(
        lambda stop: run_relay(
            engine, url, publish, settings.relay_poll_seconds, stop, DispatchCaps.of(settings)
        ),
        "relay",
    )


def projector(settings: Settings, engine: Engine) -> None:
    """One supervised thread per projection: a crash (a database restart, a bad event) restarts that
    projection's loop after a pause instead of silently ending it."""
    url = settings.database_url or ""
    stop = stop_on_signals()

    def _loop(projection: Projection) -> Callable[[threading.Event], None]:
        return lambda s: run_projector(engine, url, settings.projector_poll_seconds, s, projection)

    threads = [
        threading.Thread(target=keep_running, args=(_loop(p), f"projector:{p.name}", stop), daemon=True)
        for p in PROJECTIONS
    ]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(timeout=0.5)


def reconciler(settings: Settings, engine: Engine) -> None:
    service = RunService(engine, settings)
    depth = queue_depth(make_celery(settings, settings.redis_url or ""))
    run_until_stopped(lambda stop: run_reconciler(service, stop, depth), "reconciler")
