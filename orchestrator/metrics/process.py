"""Metrics only the process itself can know, kept in prometheus-client's default registry: each process
exports its own and Prometheus sums them (the event store's append latency; the API's open streams)."""

from __future__ import annotations

from prometheus_client import Histogram

APPEND_SECONDS = Histogram(
    "orch_event_append_seconds",
    "Time to append one batch of events to the log (lock, version check and insert; the commit is the "
    "caller's), in this process.",
    ["operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

TASK_SECONDS = Histogram(
    "orch_worker_task_seconds",
    "One delivery handled by a worker, by what came of it (succeeded, failed, retrying, canceled, "
    "superseded, dropped).",
    ["outcome"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0),
)
