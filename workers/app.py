"""The Celery app with the orchestrator's task registered. Start it with `orchestrator worker`."""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager
from typing import Any
from uuid import UUID

from celery import Celery, Task
from celery.app.task import Context
from celery.signals import setup_logging, worker_process_init, worker_ready

from orchestrator import correlation, log, tracing
from orchestrator.metrics.process import TASK_SECONDS
from orchestrator.processes.broker import EXECUTE_RUN_TASK, make_celery
from orchestrator.settings import Settings, get_settings
from workers import executor, runtime, shutdown


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _in_pool_child(**_: object) -> None:
    shutdown.mark_pool_child()
    # Per pool process: an exporter's thread started before the fork would not run in it.
    settings = get_settings()
    tracing.configure(settings.otel_enabled, "orchestrator-worker", settings.otel_exporter)


def message_request_id(request: Context) -> str | None:
    """The request id the relay put in the message's headers; one not shaped like an id is dropped."""
    value = request.get(correlation.MESSAGE_HEADER)
    return value if isinstance(value, str) and correlation.is_valid(value) else None


def attempt_span(
    request: Context, run_id: str, attempt: int, request_id: str | None
) -> AbstractContextManager[tracing.Handle]:
    """With tracing on, the attempt's span: a child of the submitting request's (the message's
    `traceparent`), holding every write the attempt makes."""
    parent = tracing.parent_of({name: request.get(name) for name in tracing.FIELDS})
    attributes: dict[str, Any] = {
        "orch.run_id": run_id,
        "orch.attempt": attempt,
        "orch.request_id": request_id,
    }
    return tracing.span("orch.execute_run", parent=parent, **attributes)


def create_app(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    if not settings.redis_url:
        raise RuntimeError("ORCH_REDIS_URL is not set")
    app = make_celery(settings, settings.redis_url)
    grace = settings.worker_shutdown_seconds

    def _on_ready(**_: object) -> None:
        shutdown.chain_sigterm(max(0.0, grace - 0.5))

    def _take_over_logging(loglevel: int | None = None, **_: object) -> None:
        # Connected, this replaces Celery's own setup: its records (a task's failure, a pool process
        # terminated on a forced cancel) go through our handler, one line each with no traceback,
        # instead of through Celery's formatter. Celery's own chatter keeps the worker's --loglevel.
        log.configure(settings.log_level, settings.log_tracebacks)
        for name in ("celery", "kombu"):
            logging.getLogger(name).setLevel(loglevel or logging.WARNING)

    worker_ready.connect(_on_ready, weak=False)
    setup_logging.connect(_take_over_logging, weak=False, dispatch_uid="orchestrator.logging")

    @app.task(name=EXECUTE_RUN_TASK, acks_late=True, bind=True)  # type: ignore[untyped-decorator]
    def execute_run(task: Task, run_id: str, attempt: int, outbox_id: int | None = None) -> str:
        # Ids only: the task re-reads everything from PostgreSQL, so a stale message cannot mislead it.
        if shutdown.in_pool_child:
            shutdown.install()
        started = time.monotonic()
        request_id = message_request_id(task.request)
        service, worker = runtime.service(), runtime.worker_name()
        with attempt_span(task.request, run_id, attempt, request_id) as span:
            outcome = executor.execute(service, UUID(run_id), attempt, worker, request_id=request_id)
            span.set("orch.outcome", outcome)
        TASK_SECONDS.labels(outcome).observe(time.monotonic() - started)
        return outcome

    return app
