"""The bare Celery baseline: a no-op task that only counts itself in Redis, configured for delivery the
way the orchestrator configures Celery (late acks, prefetch 1, no result backend), so the comparison is
the orchestrator's bookkeeping against none at all.

The worker is `python -m celery -A tests.benchmarks.celery_noop worker`, which reads its broker and
queue from BENCH_BROKER_URL and BENCH_QUEUE; the benchmark builds the same app with make_app."""

from __future__ import annotations

import os
from typing import Any

import redis
from celery import Celery

TASK_NAME = "bench.noop"
_counter_client: dict[str, redis.Redis[bytes]] = {}


def make_app(broker_url: str, queue: str) -> tuple[Celery, Any]:
    app = Celery("bench_noop", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_default_queue=queue,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )

    @app.task(name=TASK_NAME)  # type: ignore[untyped-decorator]
    def noop(counter: str) -> None:
        # Counting completions with INCR keeps the result backend out of the measurement.
        client = _counter_client.get(broker_url)
        if client is None:
            client = _counter_client[broker_url] = redis.Redis.from_url(broker_url)
        client.incr(counter)

    return app, noop


app = (
    make_app(os.environ["BENCH_BROKER_URL"], os.environ["BENCH_QUEUE"])[0]
    if "BENCH_BROKER_URL" in os.environ
    else None
)
