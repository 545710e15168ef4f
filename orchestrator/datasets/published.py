"""Every published task: the registry's own (`schemas.tasks`) and one per dataset task, whose context is
the feature to run on, the run's limits, and the task's own variables."""

from __future__ import annotations

from orchestrator.datasets.tasks import DATASET_TASKS
from schemas.tasks import PUBLISHED_TASKS, ContextVar, PublishedTask

KIND = "dataset_task"
FEATURE_ID = ContextVar("featureId", "string", required=True, description="The feature (dataset) to run on.")
MAX_BAD_SHARE = ContextVar(
    "maxBadShare",
    "number",
    default=0.01,
    description="Fail with invalid_output when more than this share of the lines is bad (0-1).",
)
CHUNK_LINES = ContextVar(
    "chunkLines",
    "integer",
    default=10_000,
    description="Lines per chunk: progress and checkpoints per chunk.",
)
RUN_VARS = (FEATURE_ID, MAX_BAD_SHARE, CHUNK_LINES)


def _published(name: str) -> PublishedTask:
    task = DATASET_TASKS[name]
    return PublishedTask(
        name=task.name,
        display_name=task.display_name,
        kind=KIND,
        category="datasets",
        description=task.description,
        context_vars=(*RUN_VARS, *task.context_vars),
    )


ALL_TASKS: dict[str, PublishedTask] = {
    **PUBLISHED_TASKS,
    **{name: _published(name) for name in DATASET_TASKS},
}
