"""The scrape-time collector: one `snapshot.read` per scrape, turned into Prometheus families."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from orchestrator.metrics import snapshot
from orchestrator.metrics.snapshot import FINISHED, Histogram, Snapshot


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    bounds = [*(repr(float(b)) for b in histogram.bounds), "+Inf"]
    return list(zip(bounds, (float(n) for n in histogram.cumulative), strict=True))


def families(found: Snapshot) -> Iterator[Metric]:
    tenant_kind = ["tenant", "kind"]
    submitted = CounterMetricFamily(
        "orch_runs_submitted",
        "Runs submitted (RunCreated in the log), as the read model shows them.",
        labels=tenant_kind,
    )
    started = CounterMetricFamily("orch_runs_started", "Runs that started at least once.", labels=tenant_kind)
    finished = CounterMetricFamily(
        "orch_runs_finished", "Runs that reached a terminal status.", labels=[*tenant_kind, "status"]
    )
    current = GaugeMetricFamily("orch_runs", "Runs by their current status.", labels=[*tenant_kind, "status"])
    for (tenant, kind), counts in sorted(found.runs.items()):
        submitted.add_metric([tenant, kind], counts.submitted)
        started.add_metric([tenant, kind], counts.started)
        for status in FINISHED:
            finished.add_metric([tenant, kind, status], counts.by_status.get(status, 0))
        for status, n in sorted(counts.by_status.items()):
            current.add_metric([tenant, kind, status], n)
    yield from (submitted, started, finished, current)

    for name, text, by_kind in (
        ("orch_run_queue_wait_seconds", "From submission to the run's first start.", found.queue_wait),
        ("orch_run_duration_seconds", "From the run's first start to its end.", found.duration),
    ):
        family = HistogramMetricFamily(name, text, labels=["kind"])
        for kind, histogram in sorted(by_kind.items()):
            family.add_metric([kind], _buckets(histogram), histogram.total)
        yield family

    yield CounterMetricFamily(
        "orch_attempts_lost", "AttemptLost events: leases that expired.", value=found.attempts_lost
    )
    yield GaugeMetricFamily("orch_log_head_position", "The log's highest position.", value=found.log_head)
    yield GaugeMetricFamily(
        "orch_outbox_backlog", "Unsent outbox rows due for publishing.", value=found.outbox_due
    )
    yield GaugeMetricFamily(
        "orch_outbox_scheduled",
        "Unsent outbox rows waiting for their retry time.",
        value=found.outbox_scheduled,
    )
    yield GaugeMetricFamily(
        "orch_outbox_oldest_due_seconds",
        "How long the oldest due outbox row has waited.",
        value=found.outbox_oldest_due_seconds,
    )
    lag_events = GaugeMetricFamily(
        "orch_projector_lag_events", "Log events not yet applied.", labels=["projection"]
    )
    lag_seconds = GaugeMetricFamily(
        "orch_projector_lag_seconds", "Age of the oldest event not yet applied.", labels=["projection"]
    )
    for lag in found.projections:
        lag_events.add_metric([lag.name], lag.events)
        lag_seconds.add_metric([lag.name], lag.seconds)
    yield from (lag_events, lag_seconds)


class LogCollector(Collector):
    """Reads the database on every scrape (the figures are the log's, not this process's)."""

    def __init__(self, engine: Engine, top_tenants: int, projections: Sequence[str]) -> None:
        self._engine, self._top_tenants, self._projections = engine, top_tenants, tuple(projections)

    def collect(self) -> Iterator[Metric]:
        # One read-only transaction, so the four statements see one moment of the log.
        with self._engine.connect() as conn, conn.begin():
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            found = snapshot.read(conn, self._top_tenants, self._projections)
        return families(found)


class GaugeCollector(Collector):
    """One gauge read from a callable at scrape time (a value only this process holds)."""

    def __init__(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        self._name, self._documentation, self._read = name, documentation, read

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self._name, self._documentation, value=self._read())
