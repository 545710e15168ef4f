"""N no-op jobs end to end: ours against bare Celery (and pgqueuer and DBOS when they install).

    .venv/bin/python -m tests.benchmarks.bench_e2e [--n 2000] [--reps 3] [--clients 16] [--no-others]

- bare Celery: a task that only INCRs a Redis counter, `apply_async` N times, a prefork worker of 2;
  timed from the first enqueue until the counter reaches N.
- ours: every role as its own process (worker concurrency 2), N `sleep` runs of duration 0 submitted
  over HTTP by 16 concurrent clients, one run per request; timed from the first request until the
  runs read model shows all N `succeeded`. Its create rate alone is a row of its own.
- ours (batch): the same system, the N runs submitted through `POST /v1/runs:batch`, 1,000 a request
  by 2 concurrent clients; timed the same way.
- pgqueuer, DBOS: their own venvs and databases, one-by-one enqueue, a running worker (drivers/).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

from tests import services
from tests.benchmarks import cpu, venvs
from tests.benchmarks.celery_noop import make_app
from tests.benchmarks.common import (
    Samples,
    Trial,
    fmt,
    interleave,
    parse_args,
    print_table,
    summarize,
    wait_for,
    write_json,
)
from tests.benchmarks.load import run_load
from tests.benchmarks.system import (
    STATS_SETTLE_SECONDS,
    CommandProcess,
    Servers,
    bench_prefix,
    clean_redis,
    commit_counters,
    running,
    servers,
    settle_stats,
    statement_counter,
)

OURS = "ours"
OURS_BATCH = "ours (batch)"
BATCH_SIZE = 1000
ROOT = Path(__file__).resolve().parents[2]


def _deadline(n: int) -> float:
    return 120.0 + n * 0.2


@contextmanager
def bare_celery(found: Servers, n: int) -> Iterator[Trial]:
    prefix = bench_prefix("celery")
    queue = f"{prefix}.noop"
    env = {**os.environ, "BENCH_BROKER_URL": found.redis_url, "BENCH_QUEUE": queue, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "celery", "-A", "tests.benchmarks.celery_noop", "worker", "-P", "prefork"]
    argv += ["-c", "2", "-Q", queue, "--loglevel", "WARNING", "--without-gossip", "--without-mingle"]
    argv += ["--without-heartbeat"]
    app, noop = make_app(found.redis_url, queue)
    counter = redis.Redis.from_url(found.redis_url)
    with tempfile.TemporaryDirectory(prefix="orch-bench-celery-") as logs, ExitStack() as stack:
        stack.callback(clean_redis, found.redis_url, prefix)
        stack.callback(counter.close)
        worker = CommandProcess("celery", argv, env, Path(logs)).start()
        stack.callback(services.stop_all, [worker])

        def count(key: str) -> int:
            return int(counter.get(key) or 0)

        noop.apply_async(args=(f"{prefix}:probe",))  # the clock starts once the worker is at work
        wait_for(lambda: count(f"{prefix}:probe") >= 1, 120, "the Celery worker's probe task")

        def trial(rep: int) -> dict[str, float]:
            key = f"{prefix}:done:{rep}"
            began = time.perf_counter()
            for _ in range(n):
                noop.apply_async(args=(key,))
            enqueued = time.perf_counter() - began
            wait_for(lambda: count(key) >= n, _deadline(n), f"{n} Celery tasks", interval=0.005)
            seconds = time.perf_counter() - began
            return {"jobs_per_s": n / seconds, "enqueue_per_s": n / enqueued}

        yield trial
        app.close()


async def _create(client: httpx.AsyncClient, index: int, state: dict[str, Any]) -> httpx.Response:
    return await client.post("/v1/runs", json={"kind": "sleep", "params": {"duration": 0}})


def _batch_of(n: int) -> Any:
    async def create(client: httpx.AsyncClient, index: int, state: dict[str, Any]) -> httpx.Response:
        size = min(BATCH_SIZE, n - index * BATCH_SIZE)
        runs = [{"kind": "sleep", "params": {"duration": 0}}] * size
        return await client.post("/v1/runs:batch", json={"runs": runs})

    return create


@contextmanager
def ours(found: Servers, n: int, clients: int) -> Iterator[tuple[Trial, Trial]]:
    """One running system, two ways of submitting to it: one run per request, and batches."""
    roles = ("relay", "project", "reconcile", "worker", "serve")
    with running(found, roles) as system, psycopg.connect(system.settings.database_url or "") as poll:
        poll.autocommit = True
        assert system.api_url is not None

        def succeeded(tenant: str) -> int:
            query = "SELECT count(*) FROM runs WHERE tenant_id = %s AND status = 'succeeded'"
            row = poll.execute(query, (tenant,)).fetchone()
            return int(row[0]) if row else 0

        def trial(rep: int, batched: bool = False) -> dict[str, float]:
            tenant = f"bench-{rep}-{'b' if batched else 'r'}-{uuid.uuid4().hex[:6]}"
            headers = {"Authorization": f"Bearer {system.api_key(tenant)}"}
            # The settle before the rep doubles as a look at what the idle roles commit on their own
            # (polls, lease checks): the window measured after the rep includes a settle of the same.
            idle_from, idle_began = commit_counters(found.admin_url, system.database_name)[0], time.time()
            settle_stats()
            commits, rollbacks = commit_counters(found.admin_url, system.database_name)
            window_began = time.time()
            idle_commits_per_s = (commits - idle_from) / (window_began - idle_began)
            statements = statement_counter(system.settings.database_url or "")
            polls = 0

            def all_succeeded() -> bool:
                nonlocal polls
                polls += 1  # each poll is a commit and a statement of our own, not the system's
                return succeeded(tenant) >= n

            roles = {p.role: p.proc.pid for p in system.processes if p.proc is not None}
            cpu_before = cpu.snapshot(roles, {"benchmark client": os.getpid()})
            began = time.perf_counter()
            if batched:
                requests = -(-n // BATCH_SIZE)
                created = run_load(system.api_url or "", headers, requests, _batch_of(n), 2)
                created.count = n  # the create rate is in runs, not requests
            else:
                created = run_load(system.api_url or "", headers, n, _create, clients)
            wait_for(all_succeeded, _deadline(n), f"{n} runs succeeded", interval=0.02)
            seconds = time.perf_counter() - began
            cpu_after = cpu.snapshot(roles, {"benchmark client": os.getpid()})
            settle_stats()
            commits_after, rollbacks_after = commit_counters(found.admin_url, system.database_name)
            values = {"jobs_per_s": n / seconds, **created.values("create")}
            values.update(
                {f"cpu_ms.{name}": ms for name, ms in cpu.per_run_ms(cpu_before, cpu_after, n).items()}
            )
            committed = commits_after - commits - polls
            values["commits_per_run"] = committed / n
            idle_share = idle_commits_per_s * (time.time() - window_began)
            values["commits_per_run_net_of_idle"] = (committed - idle_share) / n
            values["rollbacks_per_run"] = (rollbacks_after - rollbacks) / n
            values["idle_commits_per_s"] = idle_commits_per_s
            statements_after = statement_counter(system.settings.database_url or "")
            if statements is not None and statements_after is not None:
                # Ours too: the polls, the first read's own SELECT, the second read's SHOW and CREATE.
                values["statements_per_run"] = (statements_after - statements - polls - 3) / n
            return values

        yield trial, lambda rep: trial(rep, batched=True)


def other(found: Servers, name: str, package: str, script: str, n: int) -> Trial | None:
    python = venvs.ensure(name, [package, "psycopg[binary]"], package)
    if python is None:
        return None

    def trial(rep: int) -> dict[str, float]:
        with services.fresh_database(found.admin_url) as url:
            result = venvs.run_driver(python, script, ["--dsn", url, "--n", str(n)], _deadline(n) + 120)
        return {"jobs_per_s": float(result["jobs_per_s"]), "enqueue_per_s": float(result["enqueue_per_s"])}

    return trial


def report(samples: Samples, n: int) -> dict[str, Any]:
    contenders = list(dict.fromkeys(s.contender for s in samples.items))
    summary: dict[str, Any] = {}
    rows = []
    for name in contenders:
        summary[name] = stats = summarize(samples, name, "jobs_per_s")
        ratio = None if name.startswith(OURS) else samples.paired_ratio("jobs_per_s", OURS, name)
        stats["ours_over_it"] = ratio
        rows.append([name, fmt(stats["median"]), fmt(stats["spread_pct"], "%"), fmt(ratio, "x", 2)])
    if OURS_BATCH in contenders:
        for name in contenders:
            if not name.startswith(OURS):
                batch_ratio = samples.paired_ratio("jobs_per_s", OURS_BATCH, name)
                rows.append([f"{OURS_BATCH} / {name}", "-", "-", fmt(batch_ratio, "x", 2)])
    for name, label in ((OURS, "ours: create only (HTTP)"), (OURS_BATCH, "ours: create only (batch)")):
        if name in contenders:
            summary[f"{name}_create_only"] = create = summarize(samples, name, "create_per_s")
            rows.append([label, fmt(create["median"]), fmt(create["spread_pct"], "%"), "-"])
    notes = (
        f"N={n} no-op jobs per rep; median over reps; spread = (max-min)/median; ours/it = median over "
        "reps of the two rates measured in the same rep."
    )
    print_table("end to end: N no-op jobs", ["system", "jobs/s (median)", "spread", "ours/it"], rows, notes)
    metrics = ("commits_per_run", "commits_per_run_net_of_idle", "rollbacks_per_run", "idle_commits_per_s")
    per_run = {m: summarize(samples, OURS, m) for m in metrics}
    statements = per_run["statements_per_run"] = summarize(samples, OURS, "statements_per_run")
    cells = [fmt(per_run[m]["median"], digits=2) for m in metrics]
    missing = "n/a (pg_stat_statements not loaded)"
    cells.append(fmt(statements["median"], digits=2) if statements["reps"] else missing)
    notes = (
        f"counted from the first request to {STATS_SETTLE_SECONDS:.0f} s after the last run succeeded "
        "(PostgreSQL flushes idle backends' counters late); 'net of idle' takes off the idle roles' own "
        "commits (polls, leases) at the rate measured just before; rollbacks are mostly read-only "
        "transactions, which SQLAlchemy ends with ROLLBACK."
    )
    columns = ["commits/run", "net of idle", "rollbacks/run", "idle commits/s", "statements/run"]
    print_table("ours, per run (pg_stat_database)", columns, [cells], notes)
    summary["ours_per_run"] = per_run
    summary["ours_cpu_ms_per_run"] = cpu_table(samples, [c for c in contenders if c.startswith(OURS)])
    return summary


def cpu_table(samples: Samples, contenders: list[str]) -> dict[str, Any]:
    """Where the machine's time went: CPU milliseconds per run of each process group, while the runs went
    from the first request to all succeeded (medians over reps)."""
    groups = sorted(
        {
            key
            for s in samples.items
            if s.contender in contenders
            for key in s.values
            if key.startswith("cpu_ms.")
        }
    )
    if not groups:
        return {}
    summary = {
        c: {g.removeprefix("cpu_ms."): summarize(samples, c, g)["median"] for g in groups} for c in contenders
    }
    rows = [
        [
            g.removeprefix("cpu_ms."),
            *(fmt(summary[c][g.removeprefix("cpu_ms.")], digits=2) for c in contenders),
        ]
        for g in groups
    ]
    rows.append(["all", *(fmt(sum(v or 0.0 for v in summary[c].values()), digits=2) for c in contenders)])
    notes = "user + system time from /proc; a role counts with its children (the worker with its pool)."
    print_table("ours, CPU ms per run by process", ["process", *contenders], rows, notes)
    return summary


def main() -> None:
    def extra(parser: Any) -> None:
        parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients (16)")
        parser.add_argument("--no-others", action="store_true", help="skip pgqueuer and DBOS")

    args = parse_args("N no-op jobs end to end", 2000, extra)
    with servers() as found, ExitStack() as stack:
        one_by_one, batched = stack.enter_context(ours(found, args.n, args.clients))
        trials: list[tuple[str, Trial]] = [
            (OURS, one_by_one),
            (OURS_BATCH, batched),
            ("celery", stack.enter_context(bare_celery(found, args.n))),
        ]
        if not args.no_others:
            for name, script in (("pgqueuer", "pgqueuer_noop.py"), ("dbos", "dbos_noop.py")):
                trial = other(found, name, name, script, args.n)
                if trial is not None:
                    trials.append((name, trial))
        samples = interleave(args.reps, trials)
    write_json("e2e", args, samples, report(samples, args.n))


if __name__ == "__main__":
    main()
