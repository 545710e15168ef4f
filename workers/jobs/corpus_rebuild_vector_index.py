"""The `corpus_rebuild_vector_index` kind: embed every record of a corpus and put a new index in place.

The index is written under a new version name (temporary files renamed into place) and only then made the
corpus's current one, so queries keep answering from the previous version until the new one is whole. A
redelivered run writes a version of its own and points the corpus at it: the last writer wins, and every
version it may point at is complete.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from orchestrator import vector_index
from orchestrator.text_records import TextRecords
from schemas.corpus_jobs import RebuildIndexParams
from schemas.runs import ErrorCode
from workers.context import JobContext
from workers.errors import JobError


def run(ctx: JobContext, params: RebuildIndexParams) -> dict[str, Any]:
    key = str(ctx.attributes.get("corpus_key") or "")
    datasets = TextRecords(ctx.service.engine)
    corpus = datasets.corpus(ctx.tenant_id, key)
    if corpus is None:
        raise JobError(ErrorCode.INSUFFICIENT_DATA, f"corpus {key!r} does not exist")
    started = time.monotonic()
    found = datasets.corpus_texts(ctx.tenant_id, key)
    total = len(found)
    ctx.progress(0, total, {"record_count": total}, "records read")
    if total < 2:
        raise JobError(ErrorCode.INSUFFICIENT_DATA, f"corpus {key!r} has {total} records; an index needs 2")

    def after_batch(done: int) -> None:
        ctx.progress(done, total, {"embedding_count": done}, "embedding")

    model, index = vector_index.build(
        [r.text for r in found], [r.id for r in found], params.dimensions, params.seed, after_batch
    )
    ctx.checkpoint()
    version = f"v{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    directory = vector_index.corpus_dir(ctx.service.settings.data_dir, ctx.tenant_id, corpus.id)
    vector_index.save(directory, version, model, index)
    datasets.set_index_version(ctx.tenant_id, key, version)
    ctx.metrics.update({"seconds": round(time.monotonic() - started, 3), "dimensions": int(index.d)})
    return {"index_version": version, "record_count": total, "corpus_id": corpus.id}
