"""The task-runs surface: `GET /api/v1/task-runs`, field for field as its reference page lists them.

Task runs are runs of kind `dataset_task` of the caller's tenant; run and task names and the feature are
creation attributes, the result location comes from the run's result. Statuses map from the run
lifecycle, with `pending` split by whether the relay has published the run's dispatch yet (an `outbox`
row with `sent_at` set):

    pending, never dispatched  -> registered
    pending, dispatched        -> pending
    running                    -> in_progress
    succeeded                  -> completed
    failed                     -> failed     (fail_message: the run's error)
    canceled                   -> failed     (fail_message: "canceled")

`STATUSES` below is that table; nothing else decides a task-run status.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Query

from orchestrator.api.deps import EngineDep, PrincipalDep
from orchestrator.api.errors import responses
from orchestrator.api.routing import api_router
from orchestrator.projections.runs import RunRecord
from orchestrator.readmodel.surfaces import TaskRunRow, task_runs
from schemas.runs import RunStatus
from schemas.surfaces_task_runs import TaskRun, TaskRunPage, TaskRunStatus

KIND = "dataset_task"

# (run status, dispatch published?) -> task-run status; None: the dispatch does not matter.
STATUSES: dict[tuple[RunStatus, bool | None], TaskRunStatus] = {
    (RunStatus.PENDING, False): TaskRunStatus.REGISTERED,
    (RunStatus.PENDING, True): TaskRunStatus.PENDING,
    (RunStatus.RUNNING, None): TaskRunStatus.IN_PROGRESS,
    (RunStatus.SUCCEEDED, None): TaskRunStatus.COMPLETED,
    (RunStatus.FAILED, None): TaskRunStatus.FAILED,
    (RunStatus.CANCELED, None): TaskRunStatus.FAILED,
}
CANCELED_MESSAGE = "canceled"

# Offsets past any real list; the bound keeps a huge `index` a 422 instead of a database error.
MAX_INDEX = 2**31 - 1

router = api_router(prefix="/api/v1/task-runs", tags=["task-runs"])

_ERRORS = responses(401, 422, 429, 503)


def task_run_status(status: RunStatus, dispatched: bool) -> TaskRunStatus:
    return STATUSES[(status, dispatched if status is RunStatus.PENDING else None)]


def _timestamp(value: datetime | None) -> str | None:
    """The page's format: ISO 8601 in UTC at second precision without an offset (2024-11-22T08:54:46)."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat()


def _text(source: Mapping[str, Any], name: str) -> str | None:
    value = source.get(name)
    return None if value is None else str(value)


def _fail_message(run: RunRecord) -> str | None:
    if run.status is RunStatus.CANCELED:
        return CANCELED_MESSAGE
    if run.status is RunStatus.FAILED:
        return str(run.error or run.error_code or "failed")
    return None


def task_run(row: TaskRunRow) -> TaskRun:
    """A run and whether its dispatch was published, as the page's run."""
    run = row.run
    attributes = run.attributes
    result: Mapping[str, Any] = run.result or {}
    created_at = _timestamp(run.created_at)
    assert created_at is not None
    return TaskRun(
        run_id=str(run.id),
        run_name=_text(attributes, "run_name") or "",
        task_id=_text(attributes, "task_id") or "",
        task_name=_text(attributes, "task_name") or "",
        feature_id=_text(attributes, "feature_id") or "",
        feature_name=_text(attributes, "feature_name") or "",
        status=task_run_status(run.status, row.dispatched),
        created_at=created_at,
        completed_at=_timestamp(run.finished_at),
        result_bucket=_text(result, "result_bucket"),
        result_file_path=_text(result, "result_file_path"),
        line_count=run.count("line_count"),
        fail_message=_fail_message(run),
    )


@router.get("", response_model=TaskRunPage, responses=_ERRORS)
def list_task_runs(
    principal: PrincipalDep,
    engine: EngineDep,
    index: Annotated[int, Query(ge=0, le=MAX_INDEX, description="Start location (offset).")] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> TaskRunPage:
    """Task runs of the caller's tenant, newest first, `limit` of them from `index`; `total` counts all."""
    with engine.connect() as conn:
        # One snapshot for the count and the page, so `total` agrees with what paging can reach.
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        total, rows = task_runs(conn, principal.tenant_id, KIND, index, limit)
    return TaskRunPage(index=index, limit=limit, total=total, runs=[task_run(r) for r in rows])
