"""The list-jobs surface: `POST /v1/list-jobs`, in the upstream API's shapes, statuses and codes.

Jobs are the caller's runs of the corpus kinds (`KINDS`); `corpus_ids` and `user_handle` are creation
attributes. States map from the run lifecycle, `running` split by whether a retry is scheduled:

    pending                       -> JOB_STATE__QUEUED
    running, no retry scheduled   -> JOB_STATE__STARTED
    running, retry scheduled      -> JOB_STATE__TRANSIENT_FAILURE_RETRY_IMMINENT
    succeeded                     -> JOB_STATE__COMPLETED
    failed                        -> JOB_STATE__FAILED
    canceled                      -> JOB_STATE__ABORTED

`STATES` is that table, read both ways: to label a run and to turn a `state` filter into SQL.

Errors keep this surface's own shape, `{"status": [{"code", "statusDetail"}], "job": []}`, with the HTTP
status the code implies (400 INVALID_ARGUMENT, 401 UNAUTHENTICATED, 429 RESOURCE_EXHAUSTED and 503
UNAVAILABLE, the last two with `Retry-After`). The app's global handlers answer in the canonical shape, so
`ListJobsRoute` catches these errors first, including the 401 and 429 the shared authentication dependency
raises and the body's validation errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException

from orchestrator.api import cursor
from orchestrator.api.deps import EngineDep, PrincipalDep, RateLimited, SettingsDep, Unauthenticated
from orchestrator.api.errors import RESPONSES, RETRY_AFTER
from orchestrator.api.routing import OneHopRoute, api_router
from orchestrator.projections.runs import RunRecord
from orchestrator.readmodel.paging import Position, decode_position, encode_position, position_of
from orchestrator.readmodel.surfaces import JobFilters, list_jobs
from orchestrator.services import StoreUnavailable
from schemas.runs import RunStatus
from schemas.surfaces_list_jobs import Job, JobState, JobType, ListJobsRequest, ListJobsResponse, StatusEntry

KINDS: dict[str, JobType] = {
    "corpus_rebuild_vector_index": JobType.CORPUS_REBUILD_VECTOR_INDEX,
    "corpus_replace_filter_attrs": JobType.CORPUS_REPLACE_FILTER_ATTRS,
}

# (run status, retry scheduled?) -> job state; None: the retry does not matter for that status.
STATES: dict[tuple[RunStatus, bool | None], JobState] = {
    (RunStatus.PENDING, None): JobState.QUEUED,
    (RunStatus.RUNNING, False): JobState.STARTED,
    (RunStatus.RUNNING, True): JobState.TRANSIENT_FAILURE_RETRY_IMMINENT,
    (RunStatus.SUCCEEDED, None): JobState.COMPLETED,
    (RunStatus.FAILED, None): JobState.FAILED,
    (RunStatus.CANCELED, None): JobState.ABORTED,
}
DEFAULT_STATES = [JobState.QUEUED, JobState.STARTED]
DEFAULT_RESULTS = 20
MAX_LOOKBACK = timedelta(days=180)
# A client that computes "180 days ago" itself, a moment before the request, must not be refused for it.
LOOKBACK_GRACE = timedelta(minutes=5)
# Page keys are bound to the tenant and to this surface; the filters travel inside the signed position.
KEY_SCOPE = {"surface": "list-jobs"}


class ListJobsError(Exception):
    """An answer in this surface's error shape: the HTTP status and the document's code that goes with it."""

    def __init__(self, status_code: int, code: str, detail: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.status_code, self.code, self.detail = status_code, code, detail
        self.retry_after = retry_after


def _invalid(detail: str) -> ListJobsError:
    return ListJobsError(400, "INVALID_ARGUMENT", detail)


def _describe(errors: Any) -> str:
    """A plain message naming each bad field; never the input itself, which may be large or secret."""
    parts = []
    for error in errors:
        if error.get("type") == "json_invalid":
            parts.append("body: not valid JSON")
            continue
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg')}")
    return "; ".join(parts)


def _error_response(error: ListJobsError) -> JSONResponse:
    body = ListJobsResponse(status=[StatusEntry(code=error.code, status_detail=error.detail)], job=[])
    headers = {"WWW-Authenticate": "Bearer"} if error.status_code == 401 else {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    content = body.model_dump(mode="json", by_alias=True, exclude_none=True)
    return JSONResponse(content, status_code=error.status_code, headers=headers)


class ListJobsRoute(OneHopRoute):
    """Turns this surface's errors into its own body before the app's global handlers see them."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except ListJobsError as exc:
                return _error_response(exc)
            except RequestValidationError as exc:
                return _error_response(_invalid(_describe(exc.errors())))
            except cursor.InvalidCursor:
                return _error_response(_invalid("pageKey is not valid for this account"))
            except Unauthenticated:
                return _error_response(ListJobsError(401, "UNAUTHENTICATED", "missing or invalid API key"))
            except RateLimited as exc:
                retry = max(1, math.ceil(exc.retry_after))
                return _error_response(ListJobsError(429, "RESOURCE_EXHAUSTED", "rate limit exceeded", retry))
            except HTTPException as exc:
                if exc.status_code != 400:
                    raise
                return _error_response(_invalid("the body could not be parsed"))
            except (OperationalError, StoreUnavailable):
                return _error_response(ListJobsError(503, "UNAVAILABLE", "database unavailable, retry", 2))

        return guarded


router = api_router(prefix="/v1/list-jobs", tags=["list-jobs"], route_class=ListJobsRoute)

# The route's own errors are in this surface's shape. The request guard answers before the route, in the
# canonical shape: 413 for a body over the size limit, 422 for JSON nested too deep (never a field error,
# which is a 400 here).
_ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ListJobsResponse, "description": "400 INVALID_ARGUMENT or 401 UNAUTHENTICATED"},
    413: RESPONSES[413],
    422: {**RESPONSES[422], "description": "JSON nested deeper than the request guard allows"},
    429: {
        "model": ListJobsResponse,
        "description": "RESOURCE_EXHAUSTED: request rate of this API key exceeded",
        "headers": RETRY_AFTER,
    },
    503: {
        "model": ListJobsResponse,
        "description": "UNAVAILABLE: the database is down, retry",
        "headers": RETRY_AFTER,
    },
}


def _epoch(value: datetime | None) -> str | None:
    return None if value is None else str(int(value.timestamp()))


def job(run: RunRecord) -> Job:
    """A run as the page's job."""
    retrying = (run.retry_at is not None) if run.status is RunStatus.RUNNING else None
    corpora = run.attributes.get("corpus_ids") or []
    created = _epoch(run.created_at)
    assert created is not None
    return Job(
        id=str(run.id),
        type=KINDS.get(run.kind, JobType.UNKNOWN),
        corpus_id=[c for c in corpora if isinstance(c, int) and not isinstance(c, bool)],
        state=STATES.get((run.status, retrying), JobState.UNKNOWN),
        ts_create=created,
        ts_start=_epoch(run.started_at),
        ts_complete=_epoch(run.finished_at),
        user_handle=run.attributes.get("user_handle"),
    )


def _resolved(body: ListJobsRequest, now: datetime) -> ListJobsRequest:
    """The request with its defaults filled in, so a page key replays exactly the first page's query."""
    since = body.epoch_secs if body.epoch_secs is not None else int((now - MAX_LOOKBACK).timestamp())
    if since < (now - MAX_LOOKBACK - LOOKBACK_GRACE).timestamp():
        raise _invalid("epochSecs is more than 180 days back")
    return body.model_copy(
        update={
            "epoch_secs": since,
            "state": body.state or DEFAULT_STATES,
            "num_results": body.num_results or DEFAULT_RESULTS,
            "page_key": None,
        }
    )


def _filters(query: ListJobsRequest) -> JobFilters | None:
    """Read-model filters, or None when nothing can match (a jobId that is no job id at all)."""
    try:
        since = datetime.fromtimestamp(query.epoch_secs or 0, UTC)
    except (OverflowError, OSError, ValueError):
        raise _invalid("epochSecs is out of range") from None
    try:
        job_id = UUID(query.job_id) if query.job_id else None
    except ValueError:
        return None
    wanted = set(query.state or ())
    return JobFilters(
        kinds=tuple(KINDS),
        states=tuple((status.value, retrying) for (status, retrying), s in STATES.items() if s in wanted),
        created_since=since,
        job_id=job_id,
        corpus_ids=tuple(query.corpus_id or ()),
    )


def _from_page_key(secret: str, tenant_id: str, key: str) -> tuple[ListJobsRequest, Position]:
    position = cursor.decode(secret, key, tenant_id, KEY_SCOPE)
    try:
        query = ListJobsRequest.model_validate(position["q"])
        return query, decode_position(position)
    except (KeyError, TypeError, ValueError, ValidationError):
        raise cursor.InvalidCursor("malformed page key") from None


@router.post("", response_model=ListJobsResponse, response_model_exclude_none=True, responses=_ERRORS)
def list_jobs_route(
    body: ListJobsRequest, principal: PrincipalDep, engine: EngineDep, settings: SettingsDep
) -> ListJobsResponse:
    """The account's jobs, newest first, filtered by every given filter (AND). Follow `pageKey` for the
    next page; it carries the filters, so the other fields are ignored when it is present."""
    secret = settings.secret_key or ""
    if body.page_key:
        query, after = _from_page_key(secret, principal.tenant_id, body.page_key)
    else:
        query, after = _resolved(body, datetime.now(UTC)), None
    limit = query.num_results or DEFAULT_RESULTS
    filters = _filters(query)
    found: list[RunRecord] = []
    if filters is not None:
        with engine.connect() as conn:
            found = list_jobs(conn, principal.tenant_id, filters, limit + 1, after)
    page_key = None
    if len(found) > limit:
        position = {
            "q": query.model_dump(mode="json", by_alias=True, exclude_none=True),
            **encode_position(position_of(found[limit - 1])),
        }
        page_key = cursor.encode(secret, principal.tenant_id, KEY_SCOPE, position)
    return ListJobsResponse(
        status=[StatusEntry(code="OK", status_detail="")],
        job=[job(run) for run in found[:limit]],
        page_key=page_key,
    )
