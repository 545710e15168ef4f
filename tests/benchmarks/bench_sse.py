"""Live streams: many SSE clients following runs while their events are committed; how long from an event's
commit to its delivery on every client, and the API process's memory while it serves them.

    .venv/bin/python -m tests.benchmarks.bench_sse [--n 200] [--runs 50] [--events 20] [--rate 200] [--reps 3]

`--n` clients follow `--runs` runs (spread evenly), each over its own connection to `GET /v1/runs/{id}/stream`
on one `serve` process (with `relay`, `project` and `reconcile`, no worker). Once every client has its
stream open, the benchmark itself plays the worker: it starts each run's attempt, then commits `--events`
progress events per run, round robin over the runs, at `--rate` events/s in all. An event's latency is
the time from the return of the commit that recorded it to the moment a client read its `id:` line; each
event counts once per client that follows its run. The clients and the writer share this process and its
clock (the clients on an asyncio loop of their own thread), so the figures include this process' own
parsing of up to `--n` streams: they are an upper bound of what the API adds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx
import psutil

from orchestrator.domain.commands import ReportProgress
from orchestrator.services import RunService, SubmitRequest
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

OURS = "ours"
P99_TARGET_MS = 100.0
RSS_TARGET_MB = 150.0


@dataclass
class Client:
    """One stream's reader: when it saw each event position, and whether its stream is open and caught up."""

    run_id: UUID
    seen: dict[int, float] = field(default_factory=dict)
    ready: threading.Event = field(default_factory=threading.Event)
    error: str | None = None


async def _follow(http: httpx.AsyncClient, client: Client, stop: asyncio.Event) -> None:
    try:
        async with http.stream("GET", f"/v1/runs/{client.run_id}/stream") as response:
            if response.status_code != 200:
                client.error = f"HTTP {response.status_code}"
                client.ready.set()
                return
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    client.seen[int(line[3:].strip())] = time.monotonic()
                    client.ready.set()  # its history arrived: the stream is open and caught up
                if stop.is_set():
                    return
    except (httpx.HTTPError, asyncio.CancelledError) as exc:
        if not stop.is_set():
            client.error = f"{type(exc).__name__}: {exc}"
            client.ready.set()


class Readers:
    """Every client's stream on one asyncio loop in a thread of its own."""

    def __init__(self, base_url: str, headers: dict[str, str], clients: list[Client]) -> None:
        self.clients = clients
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sse-readers", daemon=True)
        self._stop = asyncio.Event()
        limits = httpx.Limits(max_connections=len(clients) + 8, max_keepalive_connections=0)
        timeout = httpx.Timeout(60.0, connect=30.0)
        self._http = httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=timeout)
        self._tasks: list[concurrent.futures.Future[None]] = []

    def __enter__(self) -> Readers:
        self._thread.start()
        for client in self.clients:
            self._tasks.append(
                asyncio.run_coroutine_threadsafe(_follow(self._http, client, self._stop), self._loop)
            )
        return self

    def __exit__(self, *_exc: object) -> None:
        async def close() -> None:
            self._stop.set()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            await self._http.aclose()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class PeakRss:
    """The API process's peak resident memory, sampled every 50 ms while the block runs."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self._stop = threading.Event()
        self.peak_mb = 0.0
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak_mb = max(self.peak_mb, self._process.memory_info().rss / 2**20)

    def __enter__(self) -> PeakRss:
        self.peak_mb = self._process.memory_info().rss / 2**20
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _started_runs(service: RunService, tenant: str, count: int) -> list[UUID]:
    runs = []
    for _ in range(count):
        outcome = service.submit(SubmitRequest(tenant_id=tenant, kind="sleep", params={"duration": 0}))
        started = service.start_attempt(outcome.run_id, 1, "bench-sse")
        assert started is not None, "the benchmark could not start the run's attempt"
        runs.append(outcome.run_id)
    return runs


def _serve_pid(system: System) -> int:
    serve = next(p for p in system.processes if p.role == "serve")
    assert serve.proc is not None
    return serve.proc.pid


def trial_of(system: System, args: Any) -> Trial:
    service = RunService(system.engine, system.settings)

    def trial(rep: int) -> dict[str, float]:
        tenant = f"bench-sse-{rep}-{uuid.uuid4().hex[:6]}"
        headers = {"Authorization": f"Bearer {system.api_key(tenant)}"}
        runs = _started_runs(service, tenant, args.runs)
        clients = [Client(runs[i % len(runs)]) for i in range(args.n)]
        committed: dict[int, tuple[UUID, float]] = {}
        with PeakRss(_serve_pid(system)) as rss, Readers(system.api_url or "", headers, clients):
            wait_for(lambda: all(c.ready.is_set() for c in clients), 120, f"{args.n} streams to open")
            failed = [c.error for c in clients if c.error]
            if failed:
                raise RuntimeError(f"{len(failed)} streams failed, the first with {failed[0]}")
            pause = 1.0 / args.rate
            began = time.monotonic()
            for step in range(args.events):
                for number, run_id in enumerate(runs):
                    due = began + (step * len(runs) + number) * pause
                    time.sleep(max(0.0, due - time.monotonic()))
                    outcome = service.execute(
                        run_id, ReportProgress(attempt=1, done=step + 1, total=args.events)
                    )
                    at = time.monotonic()
                    committed.update((event.position, (run_id, at)) for event in outcome.recorded)
            written = time.monotonic() - began

            def delivered() -> bool:
                return all(
                    all(position in c.seen for position, (run, _) in committed.items() if run == c.run_id)
                    for c in clients
                )

            wait_for(delivered, 120, "every event on every stream", interval=0.1)
        latencies = [
            (client.seen[position] - at) * 1000
            for client in clients
            for position, (run, at) in committed.items()
            if run == client.run_id
        ]
        return {
            "deliveries": float(len(latencies)),
            "events_per_s": len(committed) / written,
            "p50_ms": percentile(latencies, 50) or 0.0,
            "p99_ms": percentile(latencies, 99) or 0.0,
            "max_ms": max(latencies),
            "api_peak_rss_mb": rss.peak_mb,
        }

    return trial


@contextmanager
def ours(args: Any) -> Iterator[Trial]:
    with (
        servers() as found,
        running(
            found,
            ("relay", "project", "reconcile", "serve"),
            sse_per_key_streams=max(20, args.n),
            sse_max_streams=max(1000, args.n),
        ) as system,
    ):
        yield trial_of(system, args)


def report(samples: Samples, args: Any) -> dict[str, Any]:
    metrics = ("p50_ms", "p99_ms", "max_ms", "events_per_s", "api_peak_rss_mb")
    summary = {metric: summarize(samples, OURS, metric) for metric in metrics}
    medians = {metric: summary[metric]["median"] for metric in metrics}
    p99, rss = medians["p99_ms"], medians["api_peak_rss_mb"]
    row = [
        str(args.n),
        str(args.runs),
        fmt(medians["events_per_s"]),
        fmt(medians["p50_ms"], digits=1),
        fmt(p99, digits=1),
        fmt(summary["p99_ms"]["spread_pct"], "%"),
        fmt(medians["max_ms"], digits=0),
        fmt(rss, " MB"),
    ]
    p99_met = "met" if p99 is not None and p99 <= P99_TARGET_MS else "not met"
    rss_met = "met" if rss is not None and rss <= RSS_TARGET_MB else "not met"
    notes = (
        f"{args.events} progress events per run, {args.rate}/s in all; latency from the commit's return to "
        f"a client's read of the event's id line, every delivery counted; medians of {args.reps} reps. "
        f"Targets: p99 <= {P99_TARGET_MS:.0f} ms ({p99_met}), API RSS <= {RSS_TARGET_MB:.0f} MB ({rss_met})."
    )
    columns = ["clients", "runs", "events/s", "p50 ms", "p99 ms", "spread", "max ms", "API peak RSS"]
    print_table("Commit to delivery on live SSE streams", columns, [row], notes)
    return summary


def main() -> None:
    def extra(parser: Any) -> None:
        parser.add_argument("--runs", type=int, default=50, help="runs the clients follow (50)")
        parser.add_argument("--events", type=int, default=20, help="progress events committed per run (20)")
        parser.add_argument(
            "--rate", type=float, default=200.0, help="events committed per second in all (200)"
        )

    args = parse_args("SSE commit-to-delivery latency", 200, extra)
    if args.runs < 1 or args.events < 1 or args.rate <= 0 or args.runs > args.n:
        raise SystemExit("--runs, --events and --rate must be positive, and --runs at most --n")
    with ours(args) as trial:
        samples = interleave(args.reps, [(OURS, trial)])
    write_json("sse", args, samples, report(samples, args))


if __name__ == "__main__":
    main()
