"""Liveness and readiness."""

from __future__ import annotations

import redis
import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from orchestrator.api.deps import EngineDep, SettingsDep
from schemas.api import CheckStatus, Health, Readiness

router = APIRouter(tags=["health"])


def redis_client(url: str) -> redis.Redis[bytes]:
    """Celery's `redis+socket://path` form is `unix://path` for redis-py."""
    if url.startswith("redis+socket://"):
        url = "unix://" + url[len("redis+socket://") :]
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


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
