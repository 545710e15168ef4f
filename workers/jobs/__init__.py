"""Job handlers by kind: one module per kind. A kind's parameters and queue are declared once, in
`schemas.jobs.JOB_KINDS`; the executor validates with that model before calling the handler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workers.context import JobContext
from workers.jobs import (
    corpus_rebuild_vector_index,
    corpus_replace_filter_attrs,
    dataset_task,
    sleep,
    taxonomy_build,
    workflow,
)

JobResult = dict[str, Any] | None
Handler = Callable[[JobContext, Any], JobResult]

HANDLERS: dict[str, Handler] = {
    "sleep": sleep.run,
    "dataset_task": dataset_task.run,
    "taxonomy_build": taxonomy_build.run,
    "corpus_rebuild_vector_index": corpus_rebuild_vector_index.run,
    "corpus_replace_filter_attrs": corpus_replace_filter_attrs.run,
    "workflow": workflow.run,
}
