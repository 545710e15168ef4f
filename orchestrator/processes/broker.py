"""The Celery application as the orchestrator configures it; the relay publishes through it and
workers register their tasks on it. Redis is only a delivery hint (PostgreSQL is the record)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from celery import Celery
from kombu.exceptions import ChannelError

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


# How many messages a queue holds waiting, or None when the broker cannot say (down, unreachable).
QueueDepth = Callable[[str], int | None]


def queue_depth(app: Celery) -> QueueDepth:
    """Waiting messages per queue as the broker counts them (kombu's passive declare), not those a worker
    has already taken. An empty Redis queue has no key at all, which kombu reports as a missing queue."""

    def waiting(queue: str) -> int | None:
        try:
            with app.connection_for_write() as conn:
                # One quick try: a reconciler pass must not stall on a broker that is down.
                conn.ensure_connection(max_retries=1, interval_start=0.1, interval_step=0.1, timeout=2)
                return int(conn.default_channel.queue_declare(queue=queue, passive=True).message_count)
        except ChannelError:
            return 0
        except Exception:  # the broker is away: the caller must not conclude anything from it
            with contextlib.suppress(Exception):
                app.pool.force_close_all()
            return None

    return waiting
