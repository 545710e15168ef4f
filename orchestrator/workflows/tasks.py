"""Which published tasks a workflow step may run (`task` inline, `spawn` as children), by name."""

from __future__ import annotations

from orchestrator.datasets.published import ALL_TASKS
from orchestrator.datasets.published import KIND as DATASET_KIND
from schemas.tasks import PublishedTask

# A dataset task needs its feature looked up when the run is created, which a worker cannot do (it never
# touches the store), and a workflow inside a workflow is not a task: both are refused when saved.
_NOT_IN_WORKFLOWS = frozenset({DATASET_KIND, "workflow"})


def workflow_tasks() -> dict[str, PublishedTask]:
    return {name: task for name, task in ALL_TASKS.items() if task.kind not in _NOT_IN_WORKFLOWS}


def task_problem(name: str) -> str | None:
    """Why a step cannot run the task `name`, or None when it can."""
    if name in workflow_tasks():
        return None
    if name in ALL_TASKS:
        return f"task {name!r} cannot run inside a workflow yet (dataset tasks run on their own)"
    return f"unknown task {name!r}; tasks a workflow may run: {', '.join(sorted(workflow_tasks()))}"
