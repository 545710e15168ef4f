"""Records and corpora of the caller's tenant: `/v1/records` (bulk upsert, keyset list) and `/v1/corpora`.

`POST /v1/records` takes `{"records": [...]}` as JSON or one record per line as `application/x-ndjson`;
either way the whole body is validated first and then upserted in one statement, so a bad record changes
nothing and its error names the line (or list index) it came from.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from orchestrator.api import cursor
from orchestrator.api.deps import PrincipalDep, SettingsDep
from orchestrator.api.errors import responses, validation_items
from orchestrator.api.routing import api_router
from orchestrator.services import InvalidRequest
from orchestrator.text_records import CorpusExists, TextRecords
from schemas.api import NO_NUL
from schemas.records import (
    MAX_RECORDS_PER_CALL,
    CorpusCreate,
    CorpusList,
    CorpusView,
    RecordBatch,
    RecordIn,
    RecordPage,
    UpsertCounts,
)

NDJSON = "application/x-ndjson"

router = api_router(tags=["records"])


def _batch_schema() -> dict[str, Any]:
    """RecordBatch's JSON schema with RecordIn inlined: a hand-declared body has no components of its own."""
    schema = RecordBatch.model_json_schema()
    definitions = schema.pop("$defs")
    schema["properties"]["records"]["items"] = definitions["RecordIn"]
    return schema


_UPSERT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _batch_schema()},
            NDJSON: {"schema": {"type": "string", "description": "One record object per line."}},
        },
    }
}


def datasets(request: Request) -> TextRecords:
    found: TextRecords = request.app.state.datasets
    return found


def _invalid(loc: list[Any], msg: str, kind: str = "value_error") -> InvalidRequest:
    return InvalidRequest([{"loc": loc, "msg": msg, "type": kind}])


def _errors(exc: ValidationError, prefix: list[Any]) -> InvalidRequest:
    items = validation_items(exc.errors(include_url=False, include_context=False, include_input=False))
    return InvalidRequest([{**item, "loc": [*prefix, *item["loc"]]} for item in items])


def parse_ndjson(body: bytes) -> list[RecordIn]:
    """One record per non-blank line; an error names its line, counted from 1."""
    found: list[RecordIn] = []
    for number, line in enumerate(body.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if len(found) == MAX_RECORDS_PER_CALL:
            raise _invalid(["body"], f"at most {MAX_RECORDS_PER_CALL} records per call")
        try:
            found.append(RecordIn.model_validate_json(line))
        except ValidationError as exc:
            raise _errors(exc, ["body", f"line {number}"]) from None
    if not found:
        raise _invalid(["body"], "no records in the body")
    return found


def parse_json(body: bytes) -> list[RecordIn]:
    try:
        return RecordBatch.model_validate_json(body or b"null").records
    except ValidationError as exc:
        raise _errors(exc, ["body"]) from None


@router.post(
    "/v1/records",
    response_model=UpsertCounts,
    responses=responses(401, 413, 422, 429, 503),
    openapi_extra=_UPSERT_BODY,
)
async def upsert_records(request: Request, principal: PrincipalDep) -> UpsertCounts:
    """Upsert up to 10,000 records by `external_id`: new ones are inserted, known ones rewritten (their
    `version` goes up by one). Send `{"records": [...]}`, or JSON lines as `application/x-ndjson`."""
    body = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    parse = parse_ndjson if content_type == NDJSON else parse_json
    batch = await run_in_threadpool(parse, body)
    return await run_in_threadpool(datasets(request).upsert_records, principal.tenant_id, batch)


@router.get("/v1/records", response_model=RecordPage, responses=responses(401, 422, 429, 503))
def list_records(
    request: Request,
    principal: PrincipalDep,
    settings: SettingsDep,
    field_id: Annotated[str | None, Query(max_length=255, pattern=NO_NUL)] = None,
    source_type: Annotated[str | None, Query(max_length=255, pattern=NO_NUL)] = None,
    source_id: Annotated[str | None, Query(max_length=255, pattern=NO_NUL)] = None,
    corpus_key: Annotated[str | None, Query(max_length=255, pattern=NO_NUL)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor_token: Annotated[str | None, Query(alias="cursor", max_length=512)] = None,
) -> RecordPage:
    """Records of the caller's tenant in load order. `source_id` empty is the "no source" bucket; the other
    filters ignore an empty value. Follow `next_cursor` for the next page."""
    filters = {
        name: value
        for name, value in (("field_id", field_id), ("source_type", source_type), ("corpus_key", corpus_key))
        if value
    }
    if source_id is not None:
        filters["source_id"] = source_id
    secret = settings.secret_key or ""
    after = None
    if cursor_token:
        position = cursor.decode(secret, cursor_token, principal.tenant_id, filters)
        after = position.get("i")
        if not isinstance(after, int):
            raise cursor.InvalidCursor("malformed cursor")
    found = datasets(request).list_records(principal.tenant_id, filters, limit + 1, after)
    next_cursor = None
    if len(found) > limit:
        next_cursor = cursor.encode(secret, principal.tenant_id, filters, {"i": found[limit - 1].id})
    return RecordPage(data=found[:limit], next_cursor=next_cursor)


@router.post(
    "/v1/corpora",
    status_code=201,
    response_model=CorpusView,
    responses={
        **responses(401, 409, 422, 429, 503),
        409: {**responses(409)[409], "description": "The tenant already has a corpus with that key"},
    },
)
def create_corpus(body: CorpusCreate, request: Request, principal: PrincipalDep) -> Any:
    """Declare a corpus: a key unique in the tenant, a name, and the metadata keys queries may filter on."""
    try:
        return datasets(request).create_corpus(
            principal.tenant_id, body.key, body.name, list(dict.fromkeys(body.filter_attributes))
        )
    except CorpusExists:
        detail = f"a corpus with key {body.key!r} exists"
        return JSONResponse({"detail": detail, "error_code": "conflict"}, status_code=409)


@router.get("/v1/corpora", response_model=CorpusList, responses=responses(401, 429, 503))
def list_corpora(request: Request, principal: PrincipalDep) -> CorpusList:
    return CorpusList(data=datasets(request).list_corpora(principal.tenant_id))
