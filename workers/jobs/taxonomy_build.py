"""The `taxonomy_build` kind: read a field's records, embed, cluster into a tree, label, store the tree.

Phases are separated by cancel checks, and embedding reports progress (and checks for cancel) after each
batch. The tree is validated before it is stored, and stored before the run succeeds: delete what an
earlier attempt stored, insert, in one transaction, so a redelivered or retried run leaves one tree.
Same records, same params, same seed: the same tree.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from orchestrator.text_records import TextRecords
from schemas.records import RecordText
from schemas.runs import ErrorCode
from schemas.taxonomy import MIN_RECORDS, TaxonomyBuildParams
from workers.context import JobContext
from workers.errors import JobError, RetryableJobError
from workers.taxonomy.cluster import ClusteringFailed, build_tree
from workers.taxonomy.embed import (
    Embedder,
    EmbedderUnavailable,
    MiniLMEmbedder,
    RemoteEmbedder,
    TfidfEmbedder,
)
from workers.taxonomy.tree import InvalidTree, Tree, assemble, validate


def make_embedder(ctx: JobContext, params: TaxonomyBuildParams) -> Embedder:
    if params.embedder == "tfidf":
        return TfidfEmbedder(params.seed)
    if params.embedder == "minilm":
        return MiniLMEmbedder()
    settings = ctx.service.settings
    if not settings.embedder_url:
        raise JobError(ErrorCode.SERVICE_UNAVAILABLE, "no remote embedder is configured (ORCH_EMBEDDER_URL)")
    return RemoteEmbedder(settings.embedder_url, settings.embedder_timeout_seconds)


class _Phases:
    """Times each phase into the run's metrics, with a cancel check before each."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.ctx.checkpoint()
        started = time.monotonic()
        yield
        self.seconds[name] = round(time.monotonic() - started, 3)


def _minimum(params: TaxonomyBuildParams) -> int:
    wanted = params.clusters if isinstance(params.clusters, int) else 2
    return max(MIN_RECORDS, 2 * wanted)


def run(ctx: JobContext, params: TaxonomyBuildParams) -> dict[str, Any]:
    attributes = ctx.attributes
    datasets = TextRecords(ctx.service.engine)
    phases = _Phases(ctx)
    with phases.phase("read"):
        found: list[RecordText] = datasets.record_texts(
            ctx.tenant_id,
            str(attributes.get("field_id") or ""),
            str(attributes.get("source_type") or ""),
            str(attributes.get("source_id") or ""),
        )
    total = len(found)
    ctx.progress(0, total, {"record_count": total}, "records read")
    if total < _minimum(params):
        raise JobError(
            ErrorCode.INSUFFICIENT_DATA,
            f"{total} matching records; a taxonomy build needs at least {_minimum(params)}",
        )
    texts = [r.text for r in found]
    with phases.phase("embed"):
        embedder = make_embedder(ctx, params)

        def report(done: int) -> None:
            ctx.progress(done, total, {"embedding_count": done}, "embedding")

        try:
            vectors = embedder.embed(texts, report)
        except EmbedderUnavailable as exc:
            raise RetryableJobError(ErrorCode.SERVICE_UNAVAILABLE, str(exc)) from None
    ctx.progress(total, total, {"embedding_count": total}, "embedded")
    with phases.phase("cluster"):
        try:
            top = build_tree(
                vectors,
                params.clusters,
                params.max_depth,
                params.min_cluster_size,
                params.seed,
                ctx.checkpoint,
            )
        except ClusteringFailed as exc:
            raise JobError(ErrorCode.GENERATION_FAILED, str(exc)) from None
    with phases.phase("label"):
        tree: Tree = assemble(top, texts, [r.id for r in found])
        try:
            validate(tree, total)
        except InvalidTree as exc:
            raise JobError(ErrorCode.INVALID_OUTPUT, f"the tree failed validation: {exc}") from None
    counts = {
        "record_count": total,
        "embedding_count": total,
        "cluster_count": len(top),
        "node_count": len(tree.nodes),
    }
    with phases.phase("store"):
        datasets.replace_tree(ctx.tenant_id, ctx.run_id, tree.nodes, tree.assignments)
    ctx.progress(total, total, counts, "tree stored")
    leaves = sum(1 for node in tree.nodes if not any(n.parent_id == node.id for n in tree.nodes))
    ctx.metrics.update(
        {
            "phase_seconds": phases.seconds,
            "embedder": embedder.name,
            "dimensions": int(vectors.shape[1]),
            "depth": max(node.depth for node in tree.nodes),
            "leaf_count": leaves,
            "records_per_second": round(total / max(sum(phases.seconds.values()), 1e-9), 1),
            # The worker process's peak so far (Linux reports KiB): an upper bound of this build's own.
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    )
    return counts
