"""The Celery application as the orchestrator configures it; the relay publishes through it and
workers register their tasks on it. Redis is only a delivery hint (PostgreSQL is the record)."""

from __future__ import annotations

from celery import Celery

from orchestrator.settings import Settings
from schemas.jobs import QueueClass

EXECUTE_RUN_TASK = "orch.execute_run"


def make_celery(settings: Settings, broker_url: str) -> Celery:
    app = Celery("orchestrator", broker=broker_url, set_as_current=False)
    visibility = settings.visibility_timeout_seconds
    transport = {
        "visibility_timeout": visibility,
        # kombu looks for expired unacked messages about every interval x throttle seconds (100 s by
        # default); with a short visibility timeout, look as often as the timeout is short.
        "unacked_restore_interval": max(1, min(10, visibility // 4)),
        "unacked_restore_throttle": 1 if visibility < 600 else 10,
    }
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_transport_options=transport,
        result_backend=None,
        task_ignore_result=True,
        task_time_limit=settings.task_time_limit_seconds,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=settings.queue_name(QueueClass.SHORT),
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        # On SIGTERM running tasks get this long to finish, then are re-queued (Celery >= 5.5).
        worker_soft_shutdown_timeout=settings.worker_shutdown_seconds,
        worker_enable_soft_shutdown_on_idle=False,
    )
    return app
