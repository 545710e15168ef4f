"""DBOS baseline, run in its own venv: this process launches DBOS (its queue worker runs here, as DBOS
runs) and enqueues no-op workflows on a queue one at a time; prints one JSON line with the time from the
first enqueue until all of them have run. The system database must be empty; DBOS migrates it."""

from __future__ import annotations

import argparse
import json
import threading
import time
from importlib.metadata import version
from typing import Any

from dbos import DBOS


def main(dsn: str, n: int) -> dict[str, Any]:
    lock = threading.Lock()
    ran = [0]

    @DBOS.workflow()
    def noop() -> None:
        with lock:
            ran[0] += 1

    DBOS(config={"name": "bench", "system_database_url": dsn, "log_level": "WARNING"})
    DBOS.launch()
    # DBOS's queue only polls (no LISTEN); a 0.1 s poll, not the 1 s default, so an idle wait does
    # not dominate what is measured.
    queue = DBOS.register_queue("bench", polling_interval_sec=0.1)

    def wait_for(count: int, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while ran[0] < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{ran[0]} of {count} workflows ran")
            time.sleep(0.002)

    try:
        queue.enqueue(noop)  # a probe: the clock starts once the queue worker is at work
        wait_for(1, timeout=120)
        began = time.perf_counter()
        for _ in range(n):
            queue.enqueue(noop)
        enqueued = time.perf_counter() - began
        wait_for(n + 1)
        seconds = time.perf_counter() - began
    finally:
        DBOS.destroy()
    return {
        "system": "dbos",
        "version": version("dbos"),
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
    print(json.dumps(main(args.dsn, args.n)))
