"""A redaction (or an embedding) over one large JSONL feature: lines per second and the worker's peak memory.

    .venv/bin/python -m tests.benchmarks.bench_dataset [--n 1000000] [--reps 1] [--chunk-lines 10000]
                                                       [--task redact|embed]

(--reps defaults to 3, like every benchmark; one rep at 1,000,000 lines is already a long run.)

Starts `serve`, `relay`, `project`, `reconcile` and `worker` on a fresh database, writes an `--n`-line
JSONL feature (an e-mail address and a phone number on every line) into a tenant's bucket, registers it
with `POST /v1/features` and runs `redact` on it through `POST /v1/features/{id}/runs`. Per rep: lines/s
from the run's start to its end (and from submit to the end), and the worker's peak resident memory,
read as each worker process's high-water mark (VmHWM, so no sample can miss a peak). The result is then
fetched through `GET /v1/task-runs/{id}/result` and checked: every line, no e-mail address left. The
worker's memory must not grow with the input: the issue's bound is 300 MB at 1,000,000 lines. With
`--task embed` the run embeds each line's `note` instead (the model fitted on the first 10,000 lines),
and the check is every line, each with its vector.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.benchmarks.common import (
    Samples,
    console,
    fmt,
    interleave,
    parse_args,
    print_table,
    summarize,
    wait_for,
    write_json,
)
from tests.benchmarks.system import System, running, servers

TASKS = ("redact", "embed")
LINES_PER_BLOCK = 10_000
EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+\.[A-Za-z]{2,}")
RSS_BOUND_MB = 300.0


def feature_blocks(lines: int) -> Iterator[bytes]:
    """The feature's bytes, a block of lines at a time: the benchmark holds no copy of the whole file."""
    for first in range(1, lines + 1, LINES_PER_BLOCK):
        yield b"".join(
            b'{"i": %d, "name": "user %d", "note": "mail user%d@example.com or call +1 555 010 %04d",'
            b' "tags": ["a", "b"], "n": %d}\n' % (i, i, i, i % 10_000, i)
            for i in range(first, min(first + LINES_PER_BLOCK, lines + 1))
        )


def peak_rss_mb(system: System) -> float:
    """The largest high-water mark among the worker's processes (the Celery parent and its pool)."""
    peak = 0
    pids = [p.proc.pid for p in system.processes if p.role == "worker" and p.proc is not None]
    for pid in pids:
        parent = psutil.Process(pid)
        for process in (parent, *parent.children(recursive=True)):
            try:
                status = Path(f"/proc/{process.pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
            peak = max(peak, int(match.group(1)) if match else 0)
    return peak / 1024


def _run(client: httpx.Client, feature_id: str, task: str, chunk_lines: int) -> dict[str, Any]:
    context: dict[str, Any] = {"chunkLines": chunk_lines, "maxBadShare": 0.0}
    if task == "embed":
        context["textField"] = "note"
    body = {"task": task, "context": context}
    answer = client.post(f"/v1/features/{feature_id}/runs", json=body)
    answer.raise_for_status()
    run_id = str(answer.json()["id"])
    finished: dict[str, Any] = {}

    def ended() -> bool:
        run = client.get(f"/v1/runs/{run_id}").json()
        finished.update(run)
        return run["status"] in ("succeeded", "failed", "canceled")

    wait_for(ended, 3600, f"run {run_id} to end", interval=0.5)
    if finished["status"] != "succeeded":
        raise SystemExit(f"the run ended {finished['status']}: {finished.get('error')}")
    return finished


def _check_result(client: httpx.Client, run_id: str, task: str, lines: int) -> None:
    """Stream the result through the API: every line there; no e-mail address left by `redact`, a
    vector on every line from `embed`."""
    wanted = re.compile(rb"^(?!.*\"embedding\":\[).", re.MULTILINE) if task == "embed" else EMAIL
    count = 0
    tail = b""
    with client.stream("GET", f"/v1/task-runs/{run_id}/result") as answer:
        answer.raise_for_status()
        for block in answer.iter_bytes():
            data = tail + block
            head, _, tail = data.rpartition(b"\n")
            if wanted.search(head):
                raise SystemExit(f"a line of the result fails the {task} check")
            count += head.count(b"\n") + (1 if head else 0)
    count += 1 if tail else 0
    if count != lines:
        raise SystemExit(f"the result has {count} lines, expected {lines}")


def _seconds(run: dict[str, Any], start: str, end: str) -> float:
    return (datetime.fromisoformat(run[end]) - datetime.fromisoformat(run[start])).total_seconds()


def main() -> None:
    def extra(parser: Any) -> None:
        parser.add_argument("--chunk-lines", type=int, default=10_000, help="lines per chunk (10000)")
        parser.add_argument("--task", choices=TASKS, default="redact", help="the dataset task (redact)")

    args = parse_args("A redaction over one large JSONL feature", 1_000_000, extra)
    lines: int = args.n
    task: str = args.task
    with servers() as found, running(found, ("serve", "relay", "project", "reconcile", "worker")) as system:
        from orchestrator.storage import Storage

        tenant = f"bench-{uuid.uuid4().hex[:8]}"
        storage = Storage.from_settings(system.settings)
        url = storage.object_url(tenant, "in/people.jsonl")
        began = time.perf_counter()
        size = storage.write_stream(url, feature_blocks(lines))
        console.print(f"wrote {lines:,} lines ({size / 1e6:.0f} MB) in {time.perf_counter() - began:.1f}s")
        headers = {"Authorization": f"Bearer {system.api_key(tenant)}"}
        with httpx.Client(base_url=system.api_url or "", headers=headers, timeout=120) as client:
            created = client.post("/v1/features", json={"name": "people", "url": url})
            created.raise_for_status()
            feature_id = str(created.json()["id"])

            def trial(rep: int) -> dict[str, float]:
                submitted = time.perf_counter()
                run = _run(client, feature_id, task, args.chunk_lines)
                wall = time.perf_counter() - submitted
                count = int(run["result"]["line_count"])
                if count != lines:
                    raise SystemExit(f"line_count {count}, expected {lines}")
                _check_result(client, str(run["id"]), task, lines)
                running_s = _seconds(run, "started_at", "finished_at")
                return {
                    "lines_per_s": lines / running_s,
                    "lines_per_s_from_submit": lines / wall,
                    "seconds": running_s,
                    "peak_rss_mb": peak_rss_mb(system),
                }

            samples = interleave(args.reps, [(task, trial)])
    write_json("dataset", args, samples, report(samples, task, lines))


def report(samples: Samples, task: str, lines: int) -> dict[str, Any]:
    metrics = ("lines_per_s", "lines_per_s_from_submit", "seconds", "peak_rss_mb")
    summary: dict[str, Any] = {metric: summarize(samples, task, metric) for metric in metrics}
    summary["lines"] = lines
    medians = {metric: summary[metric]["median"] for metric in metrics}
    rss = medians["peak_rss_mb"]
    within = rss is not None and rss <= RSS_BOUND_MB
    print_table(
        f"{task} over {lines:,} JSONL lines",
        ("lines/s (run)", "lines/s (from submit)", "seconds", "worker peak RSS"),
        [
            (
                fmt(medians["lines_per_s"], digits=0),
                fmt(medians["lines_per_s_from_submit"], digits=0),
                fmt(medians["seconds"]),
                fmt(rss, " MB"),
            )
        ],
        notes=f"peak RSS bound {RSS_BOUND_MB:g} MB: {'met' if within else 'NOT met'}",
    )
    console.print(json.dumps(medians, default=str))
    return summary


if __name__ == "__main__":
    main()
