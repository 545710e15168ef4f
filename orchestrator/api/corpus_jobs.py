"""Jobs on a corpus and queries of its vector index: `POST /v1/corpora/{key}/jobs` and `.../query`.

A job is a run of the kind its `type` names, created with the attributes the list-jobs surface shows
(`corpus_ids`, the corpus's numeric id, and `user_handle`, the key's name or handle). A query embeds the
text with the model stored beside the index, and answers from the version the last rebuild put in place.
"""

from __future__ import annotations

from typing import Any

from fastapi import Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from orchestrator.api.deps import PrincipalDep, ServiceDep, SettingsDep
from orchestrator.api.errors import responses
from orchestrator.api.records import datasets
from orchestrator.api.routing import api_router
from orchestrator.api.views import run_view
from orchestrator.readmodel.runs import as_written
from orchestrator.services import InvalidRequest, SubmitRequest
from schemas.api import RunView
from schemas.corpus_jobs import JOB_TYPE_KINDS, CorpusJobCreate, CorpusQuery, QueryHit, QueryResult
from schemas.records import CorpusView

router = api_router(prefix="/v1/corpora", tags=["records"])

CorpusKey = Path(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.:-]+$")


def _missing() -> JSONResponse:
    return JSONResponse({"detail": "corpus not found", "error_code": "not_found"}, status_code=404)


def _corpus(request: Request, tenant_id: str, key: str) -> CorpusView | None:
    return datasets(request).corpus(tenant_id, key)


@router.post(
    "/{key}/jobs",
    status_code=201,
    response_model=RunView,
    responses={
        **responses(401, 404, 422, 429, 503),
        404: {**responses(404)[404], "description": "No such corpus"},
    },
)
def start_corpus_job(
    body: CorpusJobCreate,
    request: Request,
    principal: PrincipalDep,
    service: ServiceDep,
    key: str = CorpusKey,
) -> Any:
    """Start a corpus job; it is listed by `POST /v1/list-jobs` with the corpus's numeric id."""
    corpus = _corpus(request, principal.tenant_id, key)
    if corpus is None:
        return _missing()
    outcome = service.submit(
        SubmitRequest(
            tenant_id=principal.tenant_id,
            kind=JOB_TYPE_KINDS[body.type],
            params=body.params,
            attributes={
                "corpus_ids": [corpus.id],
                "corpus_key": corpus.key,
                "user_handle": principal.key_name or principal.actor,
            },
            actor=principal.actor,
        )
    )
    return run_view(as_written(outcome.stream))


@router.post(
    "/{key}/query",
    response_model=QueryResult,
    responses={
        **responses(401, 404, 409, 422, 429, 503),
        404: {**responses(404)[404], "description": "No such corpus"},
        409: {**responses(409)[409], "description": "The corpus has no vector index yet"},
    },
)
async def query_corpus(
    body: CorpusQuery,
    request: Request,
    principal: PrincipalDep,
    settings: SettingsDep,
    key: str = CorpusKey,
) -> Any:
    """The `k` records nearest to `text`, best first; `filter` keeps records whose metadata has every
    given value, on the corpus's declared `filter_attributes` only."""
    corpus = await run_in_threadpool(_corpus, request, principal.tenant_id, key)
    if corpus is None:
        return _missing()
    undeclared = sorted(set(body.filter or {}) - set(corpus.filter_attributes))
    if undeclared:
        msg = f"not filterable attributes of this corpus: {', '.join(undeclared)}"
        raise InvalidRequest([{"loc": ["body", "filter"], "msg": msg, "type": "value_error"}])
    if corpus.index_version is None:
        body_409 = {
            "detail": "the corpus has no vector index yet: run JOB__CORPUS_REBUILD_VECTOR_INDEX",
            "error_code": "conflict",
        }
        return JSONResponse(body_409, status_code=409)
    return await run_in_threadpool(_search, request, principal.tenant_id, settings.data_dir, corpus, body)


def _search(request: Request, tenant_id: str, data_dir: Any, corpus: CorpusView, body: CorpusQuery) -> Any:
    # Imported on the first query, not with the app: faiss, scikit-learn and SciPy are most of an API
    # process's memory and start-up time, and only this route needs them.
    from orchestrator import vector_index

    directory = vector_index.corpus_dir(data_dir, tenant_id, corpus.id)
    version = corpus.index_version or ""
    try:
        model, index = vector_index.load_cached(directory, version)
    except vector_index.IndexMissing:
        detail = "the corpus's vector index is not on this server's data folder; rebuild it"
        return JSONResponse({"detail": detail, "error_code": "conflict"}, status_code=409)
    allowed = None
    if body.filter:
        allowed = datasets(request).corpus_ids_matching(tenant_id, corpus.key, dict(body.filter))
    hits = vector_index.search(model, index, body.text, body.k, allowed)
    names = datasets(request).external_ids(tenant_id, [record_id for record_id, _ in hits])
    return QueryResult(
        data=[QueryHit(record_id=i, external_id=names[i], score=s) for i, s in hits if i in names],
        index_version=version,
    )
