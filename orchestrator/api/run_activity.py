"""`GET /v1/runs:activity`: the caller's runs per minute over the last hour (or up to a day), the
dashboard's throughput and queue-wait charts.

One indexed query over the `runs` read model (`readmodel.activity`), scoped to the key's tenant like
every read; like the list, it shows what the projector has folded so far.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from orchestrator.api.deps import EngineDep, PrincipalDep
from orchestrator.api.errors import responses
from orchestrator.api.routing import api_router
from orchestrator.readmodel import activity
from schemas.api import MAX_ACTIVITY_MINUTES, ActivityMinute, RunActivity

router = api_router(tags=["runs"])


@router.get("/v1/runs:activity", response_model=RunActivity, responses=responses(401, 422, 429, 503))
def run_activity_per_minute(
    principal: PrincipalDep,
    engine: EngineDep,
    minutes: Annotated[int, Query(ge=1, le=MAX_ACTIVITY_MINUTES)] = 60,
) -> RunActivity:
    """The caller's last `minutes` minutes: runs started and finished (per terminal status) in each, and
    the queue wait p50/p95 of the runs that started in it. Oldest first, the current minute last."""
    with engine.connect() as conn:
        found = activity.per_minute(conn, principal.tenant_id, minutes)
    return RunActivity(
        minutes=minutes,
        as_of=found.as_of,
        data=[
            ActivityMinute(
                minute=m.minute,
                started=m.started,
                succeeded=m.succeeded,
                failed=m.failed,
                canceled=m.canceled,
                queue_wait_p50=m.queue_wait_p50,
                queue_wait_p95=m.queue_wait_p95,
            )
            for m in found.minutes
        ],
    )
