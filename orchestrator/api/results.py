"""`GET /v1/task-runs/{id}/result`: a dataset run's result file, streamed from its tenant's bucket."""

from __future__ import annotations

from uuid import UUID

from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from orchestrator.api.deps import EngineDep, PrincipalDep, SettingsDep
from orchestrator.api.errors import NotFound, responses
from orchestrator.api.routing import api_router
from orchestrator.datasets.published import KIND
from orchestrator.readmodel.runs import get_run
from orchestrator.storage import Storage, StorageRefused, bucket_name
from schemas.runs import RunStatus

router = api_router(prefix="/v1/task-runs", tags=["features"])


def _result_url(engine: EngineDep, storage: Storage, tenant_id: str, run_id: UUID) -> str:
    with engine.connect() as conn:
        run = get_run(conn, tenant_id, run_id)
    if run is None or run.kind != KIND or run.status is not RunStatus.SUCCEEDED or not run.result:
        raise NotFound("result")
    bucket, path = run.result.get("result_bucket"), run.result.get("result_file_path")
    # The result names its bucket; it must be the caller's own, whatever a result could say.
    if bucket != bucket_name(tenant_id) or not isinstance(path, str):
        raise NotFound("result")
    try:
        url = storage.object_url(tenant_id, path)
    except StorageRefused:
        raise NotFound("result") from None
    if not storage.exists(url):
        raise NotFound("result")
    return url


@router.get(
    "/{run_id}/result",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}, **responses(401, 404, 422, 429, 503)},
)
async def get_result(
    run_id: UUID, principal: PrincipalDep, engine: EngineDep, settings: SettingsDep
) -> StreamingResponse:
    """The result of a succeeded dataset run, one JSON record per line; 404 while there is none."""
    storage = Storage.from_settings(settings)
    url = await run_in_threadpool(_result_url, engine, storage, principal.tenant_id, run_id)
    filename = f"{run_id}.jsonl"
    return StreamingResponse(
        storage.read_blocks(url),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
