"""What a dataset-task run is created with, whichever route starts it (`POST /v1/features/{id}/runs` or
the data-products surface): the feature's URL and format copied into the run's parameters, the task's
configuration checked now (a 422 on the variable at fault, not a failed run later), and the names the
task-runs surface shows recorded as creation attributes."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy.engine import Connection

from orchestrator.datasets.published import CHUNK_LINES, FEATURE_ID, MAX_BAD_SHARE, RUN_VARS
from orchestrator.datasets.tasks import DATASET_TASKS
from orchestrator.datasets.tasks.base import ConfigError
from orchestrator.services import InvalidRequest
from orchestrator.store import features
from schemas.tasks import PublishedTask

_RUN_VAR_NAMES = frozenset(var.name for var in RUN_VARS)


def _context_error(variable: str, msg: str) -> InvalidRequest:
    return InvalidRequest([{"loc": ["body", "context", variable], "msg": msg, "type": "value_error"}])


def dataset_submission(
    conn: Connection, tenant_id: str, task: PublishedTask, context: dict[str, Any], run_name: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(params, attributes) for a run of dataset task `task` with its resolved `context`."""
    try:
        feature_id = UUID(str(context[FEATURE_ID.name]))
    except ValueError:
        raise _context_error(FEATURE_ID.name, "featureId must be a feature's id (a UUID)") from None
    feature = features.get(conn, tenant_id, feature_id)
    if feature is None:
        raise _context_error(FEATURE_ID.name, "no feature with this id")
    config = {name: value for name, value in context.items() if name not in _RUN_VAR_NAMES}
    try:
        DATASET_TASKS[task.name](config)
    except ConfigError as exc:
        raise _context_error(exc.variable, exc.message) from None
    params = {
        "task": task.name,
        "input_url": feature.url,
        "input_format": feature.format,
        "feature_id": str(feature.id),
        "config": config,
        "chunk_lines": context.get(CHUNK_LINES.name, CHUNK_LINES.default),
        "max_bad_share": context.get(MAX_BAD_SHARE.name, MAX_BAD_SHARE.default),
    }
    attributes = {
        "task_id": str(task.id),
        "task_name": task.name,
        "task_display_name": task.display_name,
        "run_name": run_name or f"{task.name} on {feature.name}",
        "feature_id": str(feature.id),
        "feature_name": feature.name,
        "context": context,
    }
    return params, attributes
