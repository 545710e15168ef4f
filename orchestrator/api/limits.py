"""`/v1/limits`: the caller's tenant's running limits. Runs over a limit wait `pending`, never refused."""

from __future__ import annotations

from orchestrator.api.deps import EngineDep, PrincipalDep, SettingsDep
from orchestrator.api.errors import responses
from orchestrator.api.routing import api_router
from orchestrator.readmodel.limits import limits_view
from orchestrator.store import limits
from schemas.limits import LimitsUpdate, LimitsView

router = api_router(prefix="/v1/limits", tags=["limits"])


@router.get("", response_model=LimitsView, responses=responses(401, 429, 503))
def get_limits(principal: PrincipalDep, engine: EngineDep, settings: SettingsDep) -> LimitsView:
    """The tenant's limits in force and how many of its runs hold a slot now."""
    with engine.connect() as conn:
        return limits_view(conn, principal.tenant_id, settings.tenant_max_running)


@router.put("", response_model=LimitsView, responses=responses(401, 413, 422, 429, 503))
def put_limits(
    body: LimitsUpdate, principal: PrincipalDep, engine: EngineDep, settings: SettingsDep
) -> LimitsView:
    """Replace the tenant's limits. Lowering one below the runs already running stops no run: new ones
    wait until enough have finished."""
    with engine.begin() as conn:
        limits.replace(conn, principal.tenant_id, body.max_running, body.per_kind)
        return limits_view(conn, principal.tenant_id, settings.tenant_max_running)
