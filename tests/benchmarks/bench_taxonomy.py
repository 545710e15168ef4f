"""Taxonomy builds and record ingestion, end to end through the API with a real worker.

    .venv/bin/python -m tests.benchmarks.bench_taxonomy [--sizes 10000,100000] [--reps 1] [--minilm]

For each size: load that many generated records (POST /v1/records, 10,000 a call) and time it, then
build a `tfidf` taxonomy of them and read the run's own figures: wall time from start to finish, records
per second, and the worker process's peak RSS (the job's `peak_rss_mb` metric). `--minilm` adds a build
with the `minilm` embedder at the smallest size when the `embeddings` extra is installed. Needs a quiet
machine; not part of the test run.
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import datetime
from typing import Any

import httpx

from schemas.taxonomy import embeddings_extra_installed
from tests.benchmarks.common import Sample as Measured
from tests.benchmarks.common import Samples, console, fmt, parse_args, print_table, wait_for, write_json
from tests.benchmarks.system import running, servers
from tests.taxonomy_corpus import generate

BATCH = 10_000
ROLES = ("serve", "relay", "project", "reconcile", "worker")


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="10000,100000", help="record counts, comma-separated")
    parser.add_argument("--minilm", action="store_true", help="also build with minilm at the smallest size")


def ingest(client: httpx.Client, tenant: str, records: int) -> float:
    """Records per second of loading `records` generated records."""
    corpus = generate(records=records, topics=10, seed=1)
    rows = [
        {"external_id": f"b{i}", "text": text, "field_id": "f", "source_type": "bench"}
        for i, text in enumerate(corpus.texts)
    ]
    started = time.perf_counter()
    for start in range(0, records, BATCH):
        response = client.post("/v1/records", json={"records": rows[start : start + BATCH]})
        response.raise_for_status()
    return records / (time.perf_counter() - started)


def build(client: httpx.Client, tenant: str, embedder: str, records: int) -> dict[str, float]:
    body = {
        "tenant_id": tenant,
        "field_id": "f",
        "source_type": "bench",
        "source_id": "",
        "params": {"embedder": embedder, "clusters": 10, "max_depth": 2, "min_cluster_size": 50},
    }
    created = client.post("/v1/taxonomy/runs", json=body)
    created.raise_for_status()
    run_id = created.json()["id"]
    found: dict[str, Any] = {}

    def done() -> bool:
        found.update(client.get(f"/v1/taxonomy/runs/{run_id}", params={"tenant_id": tenant}).json())
        return found.get("status") in ("succeeded", "failed", "canceled")

    wait_for(done, timeout=3600, what=f"taxonomy run {run_id}", interval=0.5)
    if found["status"] != "succeeded":
        raise RuntimeError(f"build ended {found['status']}: {found.get('error')}")
    seconds = (
        datetime.fromisoformat(found["finished_at"]) - datetime.fromisoformat(found["started_at"])
    ).total_seconds()
    metrics = found["metrics"]
    return {
        "build_seconds": seconds,
        "build_records_per_s": records / seconds,
        "peak_rss_mb": float(metrics["peak_rss_mb"]),
        "nodes": float(found["node_count"]),
        **{f"{phase}_s": float(s) for phase, s in metrics["phase_seconds"].items()},
    }


def main() -> None:
    args = parse_args("Taxonomy builds and ingestion through the API", None, _extra)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    samples = Samples()
    with servers() as found, running(found, ROLES) as system:
        for rep in range(1, args.reps + 1):
            for size in sizes:
                tenant = f"bench-{uuid.uuid4().hex[:8]}"
                headers = {"Authorization": f"Bearer {system.api_key(tenant)}"}
                with httpx.Client(base_url=system.api_url or "", headers=headers, timeout=600) as client:
                    values = {"ingest_records_per_s": ingest(client, tenant, size)}
                    values.update(build(client, tenant, "tfidf", size))
                    samples.items.append(Measured(f"tfidf {size:,}", rep, values))
                    if args.minilm and size == min(sizes):
                        if embeddings_extra_installed():
                            minilm = build(client, tenant, "minilm", size)
                            samples.items.append(Measured(f"minilm {size:,}", rep, minilm))
                        else:
                            console.print("[yellow]minilm skipped: the `embeddings` extra is not installed")
    rows = [
        [
            s.contender,
            str(s.rep),
            fmt(s.values.get("ingest_records_per_s"), digits=0),
            fmt(s.values["build_records_per_s"], digits=0),
            fmt(s.values["build_seconds"], " s"),
            fmt(s.values["peak_rss_mb"], " MB", 0),
            fmt(s.values.get("embed_s"), " s"),
            fmt(s.values.get("cluster_s"), " s"),
        ]
        for s in samples.items
    ]
    columns = ("build", "rep", "ingest rec/s", "build rec/s", "build", "peak RSS", "embed", "cluster")
    print_table("Taxonomy builds", columns, rows, notes="peak RSS: the worker process, as the job reports it")
    summary = {f"{s.contender} rep {s.rep}": s.values for s in samples.items}
    write_json("bench_taxonomy", args, samples, summary)


if __name__ == "__main__":
    main()
