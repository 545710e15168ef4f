"""Liveness and readiness."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi.responses import JSONResponse

from orchestrator.api.deps import EngineDep, SettingsDep
from orchestrator.api.routing import api_router
from orchestrator.api.shared_limits import redis_client
from schemas.api import CheckStatus, Health, Readiness

router = api_router(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The database or the broker is down"}},
)
def readyz(engine: EngineDep, settings: SettingsDep) -> JSONResponse:
    checks: dict[str, CheckStatus] = {}
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:
        checks["database"] = "unavailable"
    try:
        client = redis_client(settings.redis_url or "")
        client.ping()
        client.close()
        checks["broker"] = "ok"
    except Exception:
        checks["broker"] = "unavailable"
    ready = all(v == "ok" for v in checks.values())
    body = Readiness(status="ready" if ready else "not_ready", checks=checks)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)
