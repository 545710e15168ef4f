"""The `corpus_replace_filter_attrs` kind: declare a corpus's filterable attributes anew and rewrite every
record's metadata to the declaration, in batches, resumable after a crash.

Each batch is one committed UPDATE of an id range, followed by a checkpoint event naming the last id done;
the attempt after a crash starts after the last checkpoint. A crash between a batch's commit and its
checkpoint redoes that one range, and the UPDATE skips the records this run already rewrote (it marks each
with the run's id), so every record is rewritten exactly once: its `version` goes up by one. Metadata stays
in PostgreSQL, where queries filter it, so the vector index is not rebuilt.
"""

from __future__ import annotations

from typing import Any

from orchestrator.text_records import TextRecords
from schemas.corpus_jobs import ReplaceFilterAttrsParams
from schemas.runs import ErrorCode
from workers.context import JobContext
from workers.errors import JobError


def run(ctx: JobContext, params: ReplaceFilterAttrsParams) -> dict[str, Any]:
    key = str(ctx.attributes.get("corpus_key") or "")
    datasets = TextRecords(ctx.service.engine)
    if datasets.corpus(ctx.tenant_id, key) is None:
        raise JobError(ErrorCode.INSUFFICIENT_DATA, f"corpus {key!r} does not exist")
    declared = list(dict.fromkeys(params.filter_attributes))
    datasets.set_filter_attributes(ctx.tenant_id, key, declared)  # the same value on every attempt
    resume = ctx.resume_from or {}
    after_id, rewritten, batches = int(resume.get("after_id", 0)), int(resume.get("rewritten", 0)), 0
    while (upto := datasets.next_batch_end(ctx.tenant_id, key, after_id, params.batch_size)) is not None:
        ctx.checkpoint()
        rewritten += datasets.rewrite_metadata(
            ctx.tenant_id, key, ctx.run_id, after_id, upto, declared, params.defaults, params.drop_undeclared
        )
        after_id, batches = upto, batches + 1
        ctx.save_checkpoint({"after_id": after_id, "rewritten": rewritten})
        ctx.progress(rewritten, None, {"record_count": rewritten}, f"records up to id {after_id}")
    ctx.metrics.update({"batches_this_attempt": batches, "resumed_after_id": int(resume.get("after_id", 0))})
    return {"record_count": rewritten, "filter_attributes": declared}
