"""The HTTP API under 16 concurrent clients: create runs, get runs by id, walk the newest-first list in
pages of 50; ours against Prefect 3's server (when it installs and starts) on the same PostgreSQL.

    .venv/bin/python -m tests.benchmarks.bench_api [--n 2000] [--reps 3] [--pages P] [--no-prefect]

Ours runs `serve`, `relay`, `project` and `reconcile` (no worker: the runs stay pending). Each rep
uses a tenant of its own (Prefect: a flow of its own), so every rep walks the same number of runs.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from tests import services
from tests.benchmarks import venvs
from tests.benchmarks.common import (
    Samples,
    Trial,
    console,
    fmt,
    interleave,
    parse_args,
    print_table,
    summarize,
    wait_for,
    write_json,
)
from tests.benchmarks.load import Operation, run_load
from tests.benchmarks.system import CommandProcess, Servers, running, servers

OURS, PREFECT = "ours", "prefect"
OPERATIONS = ("create", "get", "list")
PAGE = 50


@dataclass(frozen=True)
class Surface:
    """One rep's view of an API: where it is, how to create, get and page, and a created run's id."""

    base_url: str
    headers: dict[str, str]
    create: Operation
    run_id: Callable[[Any], str]
    get_path: Callable[[str], str]
    page: Operation


def measure(surface: Surface, n: int, pages: int) -> dict[str, float]:
    created = run_load(surface.base_url, surface.headers, n, surface.create, keep_bodies=True)
    ids = [surface.run_id(body) for body in created.responses]

    async def get(client: httpx.AsyncClient, index: int, state: dict[str, Any]) -> httpx.Response:
        return await client.get(surface.get_path(ids[(index * 7919) % len(ids)]))  # spread over all runs

    got = run_load(surface.base_url, surface.headers, n, get)
    listed = run_load(surface.base_url, surface.headers, pages, surface.page)
    return {**created.values("create"), **got.values("get"), **listed.values("list")}


async def _ours_create(client: httpx.AsyncClient, index: int, state: dict[str, Any]) -> httpx.Response:
    return await client.post("/v1/runs", json={"kind": "sleep", "params": {"duration": 0}})


async def _ours_page(client: httpx.AsyncClient, index: int, state: dict[str, Any]) -> httpx.Response:
    params = {"limit": PAGE, **({"cursor": state["cursor"]} if state.get("cursor") else {})}
    response = await client.get("/v1/runs", params=params)
    state["cursor"] = response.json().get("next_cursor")  # None: the walk starts over at the top
    return response


@contextmanager
def ours(found: Servers, n: int, pages: int) -> Iterator[Trial]:
    with running(found, ("relay", "project", "reconcile", "serve")) as system:

        def trial(rep: int) -> dict[str, float]:
            key = system.api_key(f"bench-{rep}-{uuid.uuid4().hex[:6]}")
            headers = {"Authorization": f"Bearer {key}"}
            surface = Surface(
                system.api_url or "", headers, _ours_create, _id, lambda i: f"/v1/runs/{i}", _ours_page
            )
            return measure(surface, n, pages)

        yield trial


def _id(body: Any) -> str:
    return str(body["id"])


async def _prefect_create(
    flow_id: str, client: httpx.AsyncClient, index: int, state: dict[str, Any]
) -> httpx.Response:
    return await client.post("/api/flow_runs/", json={"flow_id": flow_id, "state": {"type": "PENDING"}})


async def _prefect_page(
    flow_id: str, client: httpx.AsyncClient, index: int, state: dict[str, Any]
) -> httpx.Response:
    offset = state.get("offset", 0)
    body = {
        "flows": {"id": {"any_": [flow_id]}},
        "sort": "EXPECTED_START_TIME_DESC",
        "limit": PAGE,
        "offset": offset,
    }
    response = await client.post("/api/flow_runs/filter", json=body)
    state["offset"] = offset + PAGE if len(response.json()) == PAGE else 0  # a short page: start over
    return response


def _prefect_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def prefect_server(found: Servers) -> Iterator[str | None]:
    """Prefect's own server (`prefect server start`, UI off) on a fresh database: its URL, or None if it
    cannot be installed or does not answer within three minutes."""
    python = venvs.ensure("prefect", ["prefect"], "prefect")
    if python is None:
        yield None
        return
    with (
        services.fresh_database(found.admin_url) as url,
        tempfile.TemporaryDirectory(prefix="orch-bench-prefect-") as home,
        ExitStack() as stack,
    ):
        port = services.free_port()
        env = {
            **os.environ,
            "PREFECT_HOME": home,
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": url.replace("postgresql:", "postgresql+asyncpg:", 1),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        argv = [str(python.parent / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
        server = CommandProcess("prefect", [*argv, "--no-ui"], env, Path(home)).start()
        stack.callback(services.stop_all, [server])
        base = f"http://127.0.0.1:{port}"
        with suppress(TimeoutError):
            wait_for(lambda: _prefect_ready(base) or not server.alive(), 180, "Prefect's /api/health", 0.5)
        if _prefect_ready(base):
            yield base
        else:
            console.print(f"[yellow]skipping prefect: its server did not start:\n{server.tail(15)}[/yellow]")
            yield None


def prefect_trial(base: str, n: int, pages: int) -> Trial:
    def trial(rep: int) -> dict[str, float]:
        flow = httpx.post(f"{base}/api/flows/", json={"name": f"bench-{rep}-{uuid.uuid4().hex[:6]}"})
        flow_id = flow.raise_for_status().json()["id"]
        create, page = partial(_prefect_create, flow_id), partial(_prefect_page, flow_id)
        return measure(Surface(base, {}, create, _id, lambda i: f"/api/flow_runs/{i}", page), n, pages)

    return trial


def report(samples: Samples, n: int, pages: int) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    rows = []
    has_prefect = any(s.contender == PREFECT for s in samples.items)
    for op in OPERATIONS:
        row = [op]
        for name in (OURS, PREFECT) if has_prefect else (OURS,):
            rate = summarize(samples, name, f"{op}_per_s")
            p50 = summarize(samples, name, f"{op}_p50_ms")["median"]
            p99 = summarize(samples, name, f"{op}_p99_ms")["median"]
            summary[f"{name}.{op}"] = {**rate, "p50_ms": p50, "p99_ms": p99}
            row += [fmt(rate["median"]), fmt(rate["spread_pct"], "%"), fmt(p50, digits=0), fmt(p99, digits=0)]
        if has_prefect:
            ratio = samples.paired_ratio(f"{op}_per_s", OURS, PREFECT)
            summary[f"ours_over_prefect.{op}"] = ratio
            row.append(fmt(ratio, "x", 2))
        rows.append(row)
    columns = ["operation", "ours/s", "spread", "p50 ms", "p99 ms"]
    if has_prefect:
        columns += ["prefect/s", "spread", "p50 ms", "p99 ms", "ours/prefect"]
    notes = (
        f"16 clients; per rep: {n} creates (one run a request), {n} gets by id, {pages} list pages of {PAGE} "
        "(ours: newest first by next_cursor; Prefect: /flow_runs/filter by offset); medians over reps; "
        "ours/prefect = median of the per-rep ratios."
    )
    print_table("API under 16 concurrent clients", columns, rows, notes)
    return summary


def main() -> None:
    def extra(parser: Any) -> None:
        parser.add_argument("--pages", type=int, default=None, help="list pages per rep (default n/5)")
        parser.add_argument("--no-prefect", action="store_true", help="skip the Prefect comparison")

    args = parse_args("API throughput and latency", 2000, extra)
    pages = args.pages or max(16, args.n // 5)
    with servers() as found, ExitStack() as stack:
        trials: list[tuple[str, Trial]] = [(OURS, stack.enter_context(ours(found, args.n, pages)))]
        if not args.no_prefect:
            base = stack.enter_context(prefect_server(found))
            if base is not None:
                trials.append((PREFECT, prefect_trial(base, args.n, pages)))
        samples = interleave(args.reps, trials)
    write_json("api", args, samples, report(samples, args.n, pages))


if __name__ == "__main__":
    main()
