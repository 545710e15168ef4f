"""pgqueuer baseline, run in its own venv: a worker process (QueueManager, defaults) and this process
enqueuing no-op jobs one at a time; prints one JSON line with the time from the first enqueue until the
worker has run all of them. The database must be empty; the schema is installed here."""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time
from importlib.metadata import version
from typing import Any

import psycopg
from pgqueuer import Queries, QueueManager


async def _queries(dsn: str) -> Queries:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    return Queries.from_psycopg_connection(conn)


def _worker(dsn: str, ran: Any) -> None:
    async def main() -> None:
        qm = QueueManager(await _queries(dsn))

        @qm.entrypoint("noop")
        async def noop(job: Any) -> None:
            with ran.get_lock():
                ran.value += 1

        await qm.run()

    asyncio.run(main())


async def _wait_for(ran: Any, count: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while ran.value < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{ran.value} of {count} jobs ran")
        await asyncio.sleep(0.002)


async def main(dsn: str, n: int) -> dict[str, Any]:
    queries = await _queries(dsn)
    await queries.install()
    ran = multiprocessing.get_context("fork").Value("q", 0)
    worker = multiprocessing.get_context("fork").Process(target=_worker, args=(dsn, ran), daemon=True)
    worker.start()
    try:
        await queries.enqueue("noop", None)  # a probe: the clock starts once the worker is at work
        await _wait_for(ran, 1, timeout=120)
        began = time.perf_counter()
        for _ in range(n):
            await queries.enqueue("noop", None)
        enqueued = time.perf_counter() - began
        await _wait_for(ran, n + 1)
        seconds = time.perf_counter() - began
    finally:
        worker.terminate()
        worker.join(10)
    return {
        "system": "pgqueuer",
        "version": version("pgqueuer"),
        "n": n,
        "seconds": seconds,
        "jobs_per_s": n / seconds,
        "enqueue_per_s": n / enqueued,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--n", type=int, required=True)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.dsn, args.n))))
