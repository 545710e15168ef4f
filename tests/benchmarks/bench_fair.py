"""Fair dispatch at the issue's own scale, with no limit set: tenant A queues 2,000 runs, then tenant B 10.

    .venv/bin/python -m tests.benchmarks.bench_fair [--n 2000] [--small 10] [--reps 3] [--cap 100]

A real system (API, relay, projector, reconciler, two worker processes) on a fresh database. Per rep, A's
runs go in through `POST /v1/runs:batch`, then B's. The figure is read from the event log: how many of
A's runs ended between B's submission and the start of B's last run. Fair means that is small next to A's
backlog: about the queue cap (`ORCH_QUEUE_MAX_IN_FLIGHT`) plus two turns per B run. `--cap 0` shows what
happens without the cap (every run published at once into the broker's first-in-first-out queue).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import sqlalchemy as sa

from orchestrator.store.schema import events
from tests.benchmarks.common import fmt, interleave, parse_args, print_table, summarize, wait_for, write_json
from tests.benchmarks.system import System, running, servers

ROLES = ("relay", "project", "reconcile", "worker", "serve")


def _submit(system: System, tenant: str, n: int) -> None:
    headers = {"Authorization": f"Bearer {system.api_key(tenant)}"}
    with httpx.Client(base_url=system.api_url or "", headers=headers, timeout=120) as client:
        for start in range(0, n, 1000):
            runs = [{"kind": "sleep", "params": {"duration": 0}}] * min(1000, n - start)
            client.post("/v1/runs:batch", json={"runs": runs}).raise_for_status()


def _positions(system: System, tenant: str, event_type: str) -> list[int]:
    query = sa.select(events.c.position).where(events.c.tenant_id == tenant, events.c.type == event_type)
    with system.engine.connect() as conn:
        return sorted(int(p) for p in conn.execute(query).scalars())


def fair_trial(system: System, n: int, small: int) -> Any:
    def trial(_rep: int) -> dict[str, float]:
        big, little = f"a-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}"
        _submit(system, big, n)
        _submit(system, little, small)
        began = time.perf_counter()
        wait_for(lambda: len(_positions(system, little, "RunStarted")) >= small, 600, "B's runs started")
        waited = time.perf_counter() - began
        submitted = _positions(system, little, "RunCreated")[0]
        last_start = _positions(system, little, "RunStarted")[-1]
        ended = [p for p in _positions(system, big, "RunSucceeded") if submitted < p < last_start]
        ahead = len([p for p in _positions(system, big, "RunSucceeded") if p < submitted])
        wait_for(lambda: len(_positions(system, big, "RunSucceeded")) >= n, 1200, "A's runs succeeded")
        return {"a_ended_meanwhile": len(ended), "a_ended_before_b": ahead, "b_wait_s": waited}

    return trial


def main() -> None:
    def extra(parser: Any) -> None:
        parser.add_argument("--small", type=int, default=10, help="tenant B's runs (10)")
        parser.add_argument("--cap", type=int, default=100, help="ORCH_QUEUE_MAX_IN_FLIGHT (100; 0: none)")

    args = parse_args("fair dispatch: a small tenant behind a big one's backlog", 2000, extra)
    with servers() as found, running(found, ROLES, queue_max_in_flight=args.cap) as system:
        samples = interleave(args.reps, [("fair", fair_trial(system, args.n, args.small))])
    met = summarize(samples, "fair", "a_ended_meanwhile")
    wait = summarize(samples, "fair", "b_wait_s")
    rows = [
        [
            f"cap {args.cap}",
            fmt(met["median"], digits=0),
            fmt(met["max"], digits=0),
            fmt(wait["median"], " s"),
        ]
    ]
    notes = (
        f"A queues {args.n:,} runs, then B {args.small}; 'A ended' counts A's runs that ended between B's "
        "submission and B's last start, from the event log; acceptance: under 200 at n=2,000"
    )
    print_table("fair dispatch", ["queue cap", "A ended (median)", "A ended (max)", "B's wait"], rows, notes)
    write_json("fair", args, samples, {"a_ended_meanwhile": met, "b_wait_s": wait})


if __name__ == "__main__":
    main()
