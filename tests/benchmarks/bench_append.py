"""Appends to the event log: 16 writer threads on streams of their own plus writers sharing one hot
stream, for a fixed time; how far the projector falls behind meanwhile; then how fast a rebuild
replays the log. Every append takes one transaction-wide advisory lock so that positions commit in
order (store/events.py); this shows what that costs, against the reader lag any alternative must beat.

    .venv/bin/python -m tests.benchmarks.bench_append [--seconds 10] [--n CAP] [--reps 3]
                                                      [--writers 16] [--hot-writers 2]

Two write paths, interleaved: `service` (RunService.execute with ReportProgress on running runs:
read the stream, fold, decide, append) and `store` (events.append directly, version tracked by the
writer). `--n` caps the appends of one rep (the default is time alone). The `project` role runs as a
process; a sampler reads `head - checkpoint` every 50 ms.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from orchestrator.domain.commands import ReportProgress
from orchestrator.projections.runner import PROJECTIONS, rebuild
from orchestrator.services import RunContended, RunService, SubmitRequest
from orchestrator.store.events import ConcurrencyError, append, head_position
from schemas.events import ProgressReported
from tests.benchmarks.common import (
    Samples,
    Trial,
    fmt,
    interleave,
    parse_args,
    percentile,
    print_table,
    summarize,
    wait_for,
    write_json,
)
from tests.benchmarks.system import System, running, servers

# One statement, one snapshot: the head and the slowest projection's checkpoint seen at the same instant.
LAG = sa.text(
    "SELECT (SELECT coalesce(max(position), 0) FROM events)"
    " - (SELECT coalesce(min(position), 0) FROM projection_checkpoints)"
)
SAMPLE_SECONDS = 0.05


@dataclass
class Budget:
    """The appends a rep may still make (thread-safe); unbounded when cap is None."""

    cap: int | None
    taken: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> bool:
        with self.lock:
            if self.cap is not None and self.taken >= self.cap:
                return False
            self.taken += 1
            return True


@dataclass
class Stream:
    run_id: UUID
    tenant: str
    version: int
    appended: int = 0
    conflicts: int = 0


def _running_run(service: RunService, tenant: str) -> Stream:
    request = SubmitRequest(tenant_id=tenant, kind="sleep", params={"duration": 0}, actor="bench")
    run_id = service.submit(request).run_id
    started = service.start_attempt(run_id, 1, "bench")
    assert started is not None
    return Stream(run_id, tenant, started.state.version)


def _write(system: System, service: RunService, stream: Stream, via_service: bool) -> None:
    """One ProgressReported on `stream`, through the service or straight into the store."""
    done = stream.appended + 1
    if via_service:
        try:
            service.execute(stream.run_id, ReportProgress(attempt=1, done=done), actor="bench")
        except RunContended:  # eight clashes in a row on the hot stream: counted, not fatal
            stream.conflicts += 1
            return
    else:
        while True:
            try:
                with system.engine.begin() as conn:
                    event = ProgressReported(attempt=1, done=done)
                    append(conn, stream.run_id, stream.tenant, [event], stream.version)
                break
            except ConcurrencyError as clash:  # another writer of the hot stream got there first
                stream.conflicts += 1
                stream.version = clash.actual
    stream.version += 1
    stream.appended += 1


def _lag_sampler(system: System, stop: threading.Event, lags: list[int]) -> None:
    with system.engine.connect() as conn:
        while not stop.wait(SAMPLE_SECONDS):
            lags.append(int(conn.execute(LAG).scalar_one()))
            conn.rollback()  # a fresh snapshot for the next sample


def append_trial(system: System, args: Any, via_service: bool) -> Trial:
    service = RunService(system.engine, system.settings)

    def trial(rep: int) -> dict[str, float]:
        tenant = f"bench-{rep}-{uuid.uuid4().hex[:6]}"
        own = [_running_run(service, tenant) for _ in range(args.writers)]
        # The hot stream's writers each keep their own idea of its version and learn the real one
        # from the clash when another writer got there first.
        first = _running_run(service, tenant)
        hot = [Stream(first.run_id, tenant, first.version) for _ in range(args.hot_writers)]
        budget, stop = Budget(args.n), threading.Event()
        deadline = time.monotonic() + args.seconds

        def loop(stream: Stream) -> None:
            while time.monotonic() < deadline and budget.take():
                _write(system, service, stream, via_service)

        lags: list[int] = []
        sampler = threading.Thread(target=_lag_sampler, args=(system, stop, lags))
        threads = [threading.Thread(target=loop, args=(stream,)) for stream in own + hot]
        sampler.start()
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - began
        caught_up = time.perf_counter()
        wait_for(lambda: _lag(system) <= 0, 600, "the projector to catch up", interval=0.01)
        catch_up = time.perf_counter() - caught_up
        stop.set()
        sampler.join()
        hot_appended = sum(s.appended for s in hot)
        return {
            "appends_per_s": (sum(s.appended for s in own) + hot_appended) / seconds,
            "hot_appends_per_s": hot_appended / seconds,
            "hot_conflicts": float(sum(s.conflicts for s in hot)),
            "lag_p50_events": float(percentile(lags, 50) or 0),
            "lag_p99_events": float(percentile(lags, 99) or 0),
            "lag_max_events": float(max(lags, default=0)),
            "catch_up_s": catch_up,
        }

    return trial


def _lag(system: System) -> int:
    with system.engine.connect() as conn:
        return int(conn.execute(LAG).scalar_one())


def rebuild_trial(system: System) -> Trial:
    def trial(rep: int) -> dict[str, float]:
        with system.engine.connect() as conn:
            events = head_position(conn)
        began = time.perf_counter()
        for projection in PROJECTIONS:
            rebuild(system.engine, projection)
        seconds = time.perf_counter() - began
        return {"rebuild_events_per_s": events / seconds, "log_events": float(events)}

    return trial


def report(samples: Samples, args: Any) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    rows = []
    for name in ("service", "store"):
        metrics = ("appends_per_s", "hot_appends_per_s", "lag_p50_events", "lag_p99_events", "catch_up_s")
        stats = {m: summarize(samples, name, m) for m in metrics}
        summary[name] = stats
        rate = stats["appends_per_s"]
        cells = [fmt(rate["median"]), fmt(rate["spread_pct"], "%"), fmt(stats["hot_appends_per_s"]["median"])]
        cells += [fmt(stats[m]["median"], digits=0) for m in ("lag_p50_events", "lag_p99_events")]
        cells.append(fmt(stats["catch_up_s"]["median"], "s", 2))
        rows.append([name, *cells])
    ratio = samples.paired_ratio("appends_per_s", "service", "store")
    summary["service_over_store"] = ratio
    columns = ["write path", "appends/s", "spread", "hot stream/s", "lag p50", "lag p99", "catch-up"]
    notes = (
        f"{args.writers} writers on streams of their own + {args.hot_writers} on one hot stream, "
        f"{args.seconds:g} s a rep; lag = log head - slowest projection checkpoint (events), sampled every "
        f"{SAMPLE_SECONDS * 1000:.0f} ms; catch-up = writers stopped to checkpoint at head; "
        f"service/store = {fmt(ratio, 'x', 2)} (median of per-rep ratios)."
    )
    print_table("appends to the event log", columns, rows, notes)
    rebuilt = summary["rebuild"] = summarize(samples, "rebuild", "rebuild_events_per_s")
    log = summarize(samples, "rebuild", "log_events")["max"]
    rows = [[fmt(log, digits=0), fmt(rebuilt["median"]), fmt(rebuilt["spread_pct"], "%")]]
    notes = f"every projection ({len(PROJECTIONS)}) replayed from position 0; events/s = log events / time"
    print_table("rebuild", ["log events", "events/s", "spread"], rows, notes)
    return summary


def main() -> None:
    def extra(parser: Any) -> None:
        parser.add_argument("--seconds", type=float, default=10.0, help="write time per rep (10)")
        parser.add_argument("--writers", type=int, default=16, help="writers on their own streams (16)")
        parser.add_argument("--hot-writers", type=int, default=2, help="writers sharing one stream (2)")

    args = parse_args("event log appends, projector lag and rebuild", None, extra)
    with servers() as found, running(found, ("project",)) as system:
        trials = [
            ("service", append_trial(system, args, via_service=True)),
            ("store", append_trial(system, args, via_service=False)),
            ("rebuild", rebuild_trial(system)),
        ]
        samples = interleave(args.reps, trials)
    write_json("append", args, samples, report(samples, args))


if __name__ == "__main__":
    main()
