"""`GET /v1/runs:counts`: the caller's runs per status, the totals the dashboard shows.

A sum over the projection's counter rows (`projections.counts`), so it costs the same at any number of
runs; like the list, it shows what the projector has folded so far.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from orchestrator.api.deps import EngineDep, PrincipalDep
from orchestrator.api.errors import responses
from orchestrator.api.routing import api_router
from orchestrator.projections import counts
from schemas.api import NO_NUL, RunCounts
from schemas.runs import RunStatus

router = api_router(tags=["runs"])


@router.get("/v1/runs:counts", response_model=RunCounts, responses=responses(401, 422, 429, 503))
def count_runs_by_status(
    principal: PrincipalDep,
    engine: EngineDep,
    kind: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
) -> RunCounts:
    """How many of the caller's runs are in each status, optionally of one `kind`."""
    with engine.connect() as conn:
        found = counts.by_status(conn, principal.tenant_id, kind=kind)
    per_status = {status: found.get(status.value, 0) for status in RunStatus}
    return RunCounts(data=per_status, total=sum(per_status.values()))
