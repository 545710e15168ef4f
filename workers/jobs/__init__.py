"""Job handlers by kind: one module per kind, whose `run` handles it. A kind's parameters and queue are
declared once, in `schemas.jobs.JOB_KINDS`; the executor validates with that model before calling the
handler."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, cast

from workers.context import JobContext

JobResult = dict[str, Any] | None
Handler = Callable[[JobContext, Any], JobResult]

# Each module is imported on its kind's first run in a process, not with the worker: the taxonomy and
# corpus kinds bring scikit-learn, SciPy and faiss, which would otherwise be most of the memory of every
# worker process, including those that only ever run `sleep`.
MODULES: dict[str, str] = {
    "sleep": "workers.jobs.sleep",
    "dataset_task": "workers.jobs.dataset_task",
    "taxonomy_build": "workers.jobs.taxonomy_build",
    "corpus_rebuild_vector_index": "workers.jobs.corpus_rebuild_vector_index",
    "corpus_replace_filter_attrs": "workers.jobs.corpus_replace_filter_attrs",
    "workflow": "workers.jobs.workflow",
}


def handler_for(kind: str) -> Handler | None:
    """The kind's handler, or None when this worker has none for it."""
    module = MODULES.get(kind)
    return None if module is None else cast(Handler, importlib.import_module(module).run)
