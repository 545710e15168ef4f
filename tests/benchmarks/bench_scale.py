"""The read side at scale: N runs over 100 tenants, then lists, totals, gets and a tree over HTTP.

    .venv/bin/python -m tests.benchmarks.bench_scale [--n 1000000] [--tenants 100] [--reps 3]
                                                     [--samples 100]

- Load: N runs with a realistic mix of kinds and statuses (pending, running, succeeded, failed after a
  retry, canceled) decided by the domain (`decide` on the folded state, as the service does) and appended
  through the store's batch write path (`append_new_streams`, 1,000 streams a transaction). One tenant
  holds a tenth of all runs (100,000 at the default N), and in it one root with 1,000 descendants.
- Catch-up: both projections fold the whole log from position 0, timed (events/s), as the `project`
  role does after a restore.
- Reads: one HTTP client, requests one after another (latency, not throughput), each kind of read
  interleaved rep by rep: first and deep (10,000 runs in) keyset pages of `/v1/runs`, plain and filtered
  by status and by kind; get by id; the task-runs and data-products lists with their exact `total`;
  the tree of the 1,000-descendant root. p50/p99 over every sample.
- `EXPLAIN (ANALYZE, BUFFERS)` of each read's main query is saved to results/scale-explain.txt, the
  slowest first.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

from orchestrator.domain.commands import (
    Cancel,
    Command,
    CreateRun,
    Fail,
    FailAttempt,
    ReportProgress,
    StartAttempt,
    Succeed,
)
from orchestrator.domain.decide import decide
from orchestrator.domain.state import RunState, evolve
from orchestrator.projections import runner
from orchestrator.readmodel.paging import keyset_page
from orchestrator.readmodel.runs import RunFilters, filtered
from orchestrator.store.events import NewStream, append_new_streams, head_position
from orchestrator.store.schema import run_counts, runs
from schemas.events import Event
from schemas.runs import ErrorCode
from tests.benchmarks.common import (
    RESULTS,
    Sample,
    Samples,
    console,
    fmt,
    parse_args,
    percentile,
    print_table,
    write_json,
)
from tests.benchmarks.system import running, servers

KINDS = (
    ("sleep", 40),
    ("dataset_task", 25),
    ("taxonomy_build", 15),
    ("workflow", 10),
    ("corpus_rebuild_vector_index", 10),
)
STATUSES = (("succeeded", 70), ("failed", 10), ("canceled", 5), ("running", 5), ("pending", 10))
BATCH = 1000
DEEP = 10_000  # runs past the newest for a "deep" keyset page (fewer below 400,000 runs: see _depth)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _weighted(rng: random.Random, table: Sequence[tuple[str, int]]) -> str:
    return rng.choices([name for name, _ in table], weights=[w for _, w in table])[0]


def _history(status: str) -> list[Command]:
    """The commands after CreateRun that leave a run in `status`, the way a worker would have sent them."""
    started = [StartAttempt(1, "bench-worker"), ReportProgress(1, 1, 1, {"records": 10})]
    if status == "pending":
        return []
    if status == "running":
        return started
    if status == "canceled":
        return [Cancel(reason="benchmark")]
    if status == "failed":
        retry = FailAttempt(1, ErrorCode.SERVICE_UNAVAILABLE, "flaky", NOW)
        return [*started, retry, StartAttempt(2, "bench-worker"), Fail(2, ErrorCode.INVALID_OUTPUT, "bad")]
    return [*started, Succeed(1, {"ok": True})]


def _decided(create: CreateRun, status: str) -> list[Event]:
    state, produced = RunState(), []
    for command in [create, *_history(status)]:
        new = decide(state, command)
        for event in new:
            state = evolve(state, event)
        produced += new
    return produced


@dataclass
class Loaded:
    tenants: list[str]
    big: str
    tree_root: uuid.UUID
    run_ids: dict[str, list[uuid.UUID]] = field(default_factory=dict)
    events: int = 0
    seconds: float = 0.0


def load(engine: Engine, n: int, tenant_count: int, seed: int = 1) -> Loaded:
    """Write the history; returns what the reads need. A progress line every 10 batches."""
    rng = random.Random(seed)
    tenants = [f"scale-{i:03d}" for i in range(tenant_count)]
    big = tenants[0]
    tree_root = uuid.uuid4()
    loaded = Loaded(tenants, big, tree_root, {t: [] for t in tenants})
    # The tree first (1 root, 100 children, 900 grandchildren), then the rest at random.
    plan: list[tuple[str, uuid.UUID, uuid.UUID | None, int]] = [(big, tree_root, None, 0)]
    for _ in range(100):
        child = uuid.uuid4()
        plan.append((big, child, tree_root, 1))
        plan += [(big, uuid.uuid4(), child, 2) for _ in range(9)]
    began = time.perf_counter()
    pending = list(plan)
    written = 0
    while written < n:
        while len(pending) < BATCH and written + len(pending) < n:
            tenant = big if rng.random() < 0.1 else rng.choice(tenants[1:] or tenants)
            pending.append((tenant, uuid.uuid4(), None, 0))
        streams = []
        for tenant, run_id, parent, depth in pending:
            kind = _weighted(rng, KINDS)
            status = "running" if parent is not None and depth == 0 else _weighted(rng, STATUSES)
            create = CreateRun(
                run_id=run_id,
                tenant_id=tenant,
                kind=kind,
                params={"n": written},
                parent_id=parent,
                root_id=tree_root if parent is not None else run_id,
                depth=depth,
                attributes={"field_id": f"f{rng.randint(0, 9)}"},
            )
            events = _decided(create, status)
            streams.append(NewStream(run_id, tenant, events, {"actor": "benchmark"}))
            loaded.run_ids[tenant].append(run_id)
            loaded.events += len(events)
        with engine.begin() as conn:
            append_new_streams(conn, streams)
        written += len(pending)
        pending = []
        if (written // BATCH) % 10 == 0:
            rate = loaded.events / (time.perf_counter() - began)
            console.print(
                f"[dim]loaded {written:,} runs, {loaded.events:,} events ({rate:,.0f} events/s)[/dim]"
            )
    loaded.seconds = time.perf_counter() - began
    return loaded


def catch_up(engine: Engine) -> dict[str, float]:
    """Fold the whole log into each projection from position 0, as the projector role does."""
    values: dict[str, float] = {}
    with engine.connect() as conn:
        head = head_position(conn)
    for projection in runner.PROJECTIONS:
        began = time.perf_counter()
        applied = runner.catch_up(engine, projection)
        seconds = time.perf_counter() - began
        values[f"catch_up_{projection.name}_events_per_s"] = applied / seconds if seconds else 0.0
        console.print(f"catch-up {projection.name}: {applied:,} events in {seconds:.1f}s (head {head:,})")
    return values


Read = Callable[[httpx.Client], httpx.Response]


def _depth(n: int) -> int:
    """How deep the deep pages are: DEEP, or less where the big tenant's sleep runs (4 % of N) are fewer."""
    return max(100, min(DEEP, n // 40) // 100 * 100)


def _deep_cursor(client: httpx.Client, query: str, depth: int) -> str:
    """The cursor `depth` runs into the list (walked once, pages of 100)."""
    cursor = None
    for _ in range(depth // 100):
        suffix = f"&cursor={cursor}" if cursor else ""
        page = client.get(f"/v1/runs?limit=100{query}{suffix}")
        page.raise_for_status()
        cursor = page.json()["next_cursor"]
        if cursor is None:
            raise RuntimeError(f"the list {query!r} has fewer than {depth} runs; raise --n")
    return str(cursor)


def reads(client: httpx.Client, loaded: Loaded, rng: random.Random, depth: int) -> dict[str, Read]:
    big_ids = loaded.run_ids[loaded.big]
    filters = (("", ""), ("status", "&status=succeeded"), ("kind", "&kind=sleep"))
    deep = {name: _deep_cursor(client, query, depth) for name, query in filters}

    def get(path: str) -> Read:
        return lambda c: c.get(path)

    return {
        "list first page": get("/v1/runs?limit=50"),
        "list first page, status": get("/v1/runs?limit=50&status=failed"),
        "list first page, kind": get("/v1/runs?limit=50&kind=dataset_task"),
        "list deep page": get(f"/v1/runs?limit=50&cursor={deep['']}"),
        "list deep page, status": get(f"/v1/runs?limit=50&status=succeeded&cursor={deep['status']}"),
        "list deep page, kind": get(f"/v1/runs?limit=50&kind=sleep&cursor={deep['kind']}"),
        "get by id": lambda c: c.get(f"/v1/runs/{rng.choice(big_ids)}"),
        "task-runs page + total": get("/api/v1/task-runs?limit=20"),
        "data-products page + total": get("/api/v1/data-products/runs?limit=50"),
        "tree of 1,000": get(f"/api/v1/data-products/runs/{loaded.tree_root}/tree"),
    }


def _sql(engine: Engine, statement: Any) -> str:
    return str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


def explain(engine: Engine, loaded: Loaded, slowest_first: Sequence[str]) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of each read's main query, as the system role runs it."""
    big = loaded.big
    statements: dict[str, Any] = {
        "list first page": keyset_page(filtered(big, RunFilters()), 50),
        "list first page, status": keyset_page(filtered(big, RunFilters(status="failed")), 50),
        "list first page, kind": keyset_page(filtered(big, RunFilters(kind="dataset_task")), 50),
        "get by id": sa.select(runs).where(runs.c.tenant_id == big, runs.c.id == loaded.run_ids[big][-1]),
        "task-runs page + total": sa.select(sa.func.sum(run_counts.c.count)).where(
            run_counts.c.tenant_id == big, run_counts.c.kind == "dataset_task"
        ),
        "data-products page + total": sa.select(sa.func.sum(run_counts.c.count)).where(
            run_counts.c.tenant_id == big
        ),
        "tree of 1,000": sa.select(runs)
        .where(runs.c.tenant_id == big, runs.c.root_id == loaded.tree_root)
        .order_by(runs.c.created_at, runs.c.id),
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "scale-explain.txt"
    with engine.connect() as conn, out.open("w") as file:
        for name in [n for n in slowest_first if n in statements]:
            sql = _sql(engine, statements[name])
            plan = conn.execute(sa.text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")).scalars().all()
            file.write(f"-- {name}\n{sql};\n" + "\n".join(plan) + "\n\n")
    console.print(f"[dim]wrote {out}[/dim]")


def measure(
    api_url: str, keys: dict[str, str], loaded: Loaded, reps: int, samples: int
) -> tuple[Samples, dict[str, list[float]]]:
    rng = random.Random(7)
    headers = {"Authorization": f"Bearer {keys[loaded.big]}"}
    latencies: dict[str, list[float]] = {}
    measured = Samples()
    with httpx.Client(base_url=api_url, headers=headers, timeout=60) as client:
        plan = reads(client, loaded, rng, _depth(sum(map(len, loaded.run_ids.values()))))
        for read in plan.values():  # a warm-up of each, so no rep pays for a cold cache alone
            read(client).raise_for_status()
        for rep in range(1, reps + 1):
            for name, read in plan.items():
                taken = []
                for _ in range(samples):
                    began = time.perf_counter()
                    response = read(client)
                    taken.append(time.perf_counter() - began)
                    if response.status_code != 200:
                        raise RuntimeError(f"{name}: HTTP {response.status_code} {response.text[:200]}")
                latencies.setdefault(name, []).extend(taken)
                p50 = percentile(taken, 50) or 0.0
                measured.items.append(Sample(name, rep, {"p50_ms": 1000 * p50}))
            console.print(f"[dim]rep {rep}/{reps} done[/dim]")
    return measured, latencies


def main() -> None:
    def extra(parser: Any) -> None:
        parser.add_argument("--tenants", type=int, default=100, help="tenants the runs spread over (100)")
        parser.add_argument("--samples", type=int, default=100, help="requests per read per rep (100)")

    args = parse_args("reads at scale", 1_000_000, extra)
    if args.n < 10_000:
        raise SystemExit("--n must be at least 10,000")
    with servers() as found, running(found, ("serve",)) as system:
        assert system.api_url is not None
        loaded = load(system.engine, args.n, args.tenants)
        load_rate = loaded.events / loaded.seconds
        console.print(f"loaded {args.n:,} runs ({loaded.events:,} events) at {load_rate:,.0f} events/s")
        caught_up = catch_up(system.engine)
        # What autovacuum would have done by the time anyone reads: visibility maps for index-only scans.
        with system.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE runs, run_counts, run_steps"))
        keys = {loaded.big: system.api_key(loaded.big)}
        measured, latencies = measure(system.api_url, keys, loaded, args.reps, args.samples)
        rows, summary = [], {"load_events_per_s": load_rate, **caught_up, "reads": {}}
        for name, taken in latencies.items():
            p50, p99 = 1000 * (percentile(taken, 50) or 0.0), 1000 * (percentile(taken, 99) or 0.0)
            summary["reads"][name] = {"p50_ms": p50, "p99_ms": p99, "samples": len(taken)}
            rows.append([name, fmt(p50, " ms", 2), fmt(p99, " ms", 2), str(len(taken))])
        print_table(
            f"reads at {args.n:,} runs over {args.tenants} tenants (the big tenant: "
            f"{len(loaded.run_ids[loaded.big]):,} runs, deep pages {_depth(args.n):,} in), "
            "over HTTP, one client",
            ["read", "p50", "p99", "samples"],
            rows,
            f"load {load_rate:,.0f} events/s; catch-up "
            + ", ".join(f"{k.split('_')[2]} {v:,.0f} events/s" for k, v in caught_up.items()),
        )
        slowest = sorted(latencies, key=lambda n: -(percentile(latencies[n], 99) or 0.0))
        explain(system.engine, loaded, slowest)
    write_json("scale", args, measured, summary)


if __name__ == "__main__":
    main()
