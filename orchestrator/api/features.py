"""`/v1/features`: a tenant's datasets (register one by URL or upload it, list them) and the runs of dataset
tasks on one of them."""

from __future__ import annotations

import re
from typing import Annotated, Any
from uuid import UUID

from fastapi import Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from orchestrator.api.dataset_runs import dataset_submission
from orchestrator.api.deps import EngineDep, PrincipalDep, ServiceDep, SettingsDep
from orchestrator.api.errors import NotFound, responses
from orchestrator.api.guards import UploadTooLarge
from orchestrator.api.routing import api_router
from orchestrator.api.views import run_view
from orchestrator.datasets.published import ALL_TASKS, FEATURE_ID, KIND
from orchestrator.readmodel.runs import as_written
from orchestrator.services import InvalidRequest, SubmitRequest
from orchestrator.storage import COPY_BLOCK, Storage, StorageRefused
from orchestrator.store import features
from schemas.api import NO_NUL, RunView
from schemas.features import (
    FeatureCreateRequest,
    FeatureFormat,
    FeatureList,
    FeatureRunRequest,
    FeatureView,
    format_of,
)
from schemas.tasks import ContextError, resolve_context

PATH = "/v1/features"
router = api_router(prefix=PATH, tags=["features"])

_UPLOAD_SCHEMA = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary"},
        "name": {"type": "string", "description": "Default: the file's name."},
        "format": {"type": "string", "enum": [f.value for f in FeatureFormat]},
    },
}
_CREATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": FeatureCreateRequest.model_json_schema()},
            "multipart/form-data": {"schema": _UPLOAD_SCHEMA},
        },
    }
}


def _view(record: features.FeatureRecord) -> FeatureView:
    return FeatureView(
        id=record.id,
        name=record.name,
        url=record.url,
        format=FeatureFormat(record.format),
        created_at=record.created_at,
    )


def _invalid(field: str, msg: str) -> InvalidRequest:
    return InvalidRequest([{"loc": ["body", field], "msg": msg, "type": "value_error"}])


@router.post(
    "",
    status_code=201,
    response_model=FeatureView,
    responses=responses(401, 413, 422, 429, 503),
    openapi_extra=_CREATE_BODY,
)
async def create_feature(
    request: Request, principal: PrincipalDep, engine: EngineDep, settings: SettingsDep
) -> FeatureView:
    """Register a file already in storage (JSON `{name, url, format?}`: `file://` inside your bucket or a
    shared root, or an allowed fsspec URL), or upload one (multipart: `file`, `name?`, `format?`), which is
    stored in your bucket."""
    storage = Storage.from_settings(settings)
    if (request.headers.get("content-type") or "").lower().startswith("multipart/form-data"):
        return await _upload(request, principal.tenant_id, engine, storage)
    body = await _json_body(request)
    try:
        url = storage.readable(principal.tenant_id, body.url)
    except StorageRefused as exc:
        raise _invalid("url", str(exc)) from None
    if url.startswith("file://") and not await run_in_threadpool(storage.exists, url):
        raise _invalid("url", "no file at this URL")
    fmt = body.format or format_of(url)
    return await run_in_threadpool(_insert, engine, principal.tenant_id, body.name, url, fmt)


def _insert(
    engine: EngineDep, tenant_id: str, name: str, url: str, fmt: FeatureFormat, feature_id: UUID | None = None
) -> FeatureView:
    with engine.begin() as conn:
        return _view(features.insert(conn, tenant_id, name, url, fmt.value, feature_id))


async def _json_body(request: Request) -> FeatureCreateRequest:
    raw = await request.body()
    try:
        return FeatureCreateRequest.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


async def _upload(request: Request, tenant_id: str, engine: EngineDep, storage: Storage) -> FeatureView:
    try:
        form = await request.form(max_files=1, max_fields=5)
    except UploadTooLarge:
        raise HTTPException(413, "request body too large") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise _invalid("file", "a multipart upload needs a `file` part")
        filename = _UNSAFE.sub("_", upload.filename or "").strip("._")[:100] or "data.jsonl"
        name = form.get("name")
        name = name if isinstance(name, str) and name.strip() else filename
        if len(name) > 255 or "\x00" in name:
            raise _invalid("name", "name must be 1-255 characters without NUL")
        fmt_field = form.get("format")
        try:
            fmt = (
                FeatureFormat(fmt_field) if isinstance(fmt_field, str) and fmt_field else format_of(filename)
            )
        except ValueError:
            raise _invalid("format", "format must be jsonl or csv") from None
        feature_id = features.new_id()
        url = storage.object_url(tenant_id, f"features/{feature_id}/{filename}")

        def blocks() -> Any:
            while block := upload.file.read(COPY_BLOCK):
                yield block

        await run_in_threadpool(storage.write_stream, url, blocks())
    finally:
        await form.close()
    return await run_in_threadpool(_insert, engine, tenant_id, name, url, fmt, feature_id)


@router.get("", response_model=FeatureList, responses=responses(401, 422, 429, 503))
def list_features(
    principal: PrincipalDep,
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> FeatureList:
    """The caller's features, newest first; `total` counts them all."""
    with engine.connect() as conn:
        total, found = features.page(conn, principal.tenant_id, limit, offset)
    return FeatureList(data=[_view(f) for f in found], total=total)


@router.post(
    "/{feature_id}/runs",
    status_code=201,
    response_model=RunView,
    responses=responses(401, 404, 409, 413, 422, 429, 503),
)
def start_feature_run(
    feature_id: UUID,
    body: FeatureRunRequest,
    principal: PrincipalDep,
    engine: EngineDep,
    service: ServiceDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=255, pattern=NO_NUL)] = None,
) -> RunView:
    """Run a published dataset task over the feature; `context` holds the task's variables (`featureId`
    is this feature). With an `Idempotency-Key`, a retry returns the run the first call created (200)."""
    task = ALL_TASKS.get(body.task)
    if task is None or task.kind != KIND:
        known = ", ".join(sorted(name for name, t in ALL_TASKS.items() if t.kind == KIND))
        raise _invalid("task", f"a dataset task is required; dataset tasks: {known}")
    given = body.context.get(FEATURE_ID.name, str(feature_id))
    if given != str(feature_id):
        raise InvalidRequest(
            [
                {
                    "loc": ["body", "context", FEATURE_ID.name],
                    "msg": "featureId differs from the feature in the path",
                    "type": "value_error",
                }
            ]
        )
    with engine.connect() as conn:
        if features.get(conn, principal.tenant_id, feature_id) is None:
            raise NotFound("feature")
        try:
            context = resolve_context(task, {**body.context, FEATURE_ID.name: str(feature_id)})
        except ContextError as exc:
            raise InvalidRequest(exc.errors) from None
        params, attributes = dataset_submission(conn, principal.tenant_id, task, context, body.run_name)
    outcome = service.submit(
        SubmitRequest(
            tenant_id=principal.tenant_id,
            kind=KIND,
            params=params,
            task=task.name,
            attributes=attributes,
            idempotency_key=idempotency_key,
            actor=principal.actor,
        )
    )
    if not outcome.created:
        response.status_code = 200
    response.headers["Location"] = f"/v1/runs/{outcome.run_id}"
    return run_view(as_written(outcome.stream))
