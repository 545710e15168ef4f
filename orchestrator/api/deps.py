"""Request dependencies: settings, engine, service, and the caller's tenant from its API key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Cookie, Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.engine import Engine

from orchestrator.api.ratelimit import RateLimiter
from orchestrator.services import RunService
from orchestrator.settings import Settings
from orchestrator.store import keys, tenancy


class Unauthenticated(Exception):
    """Missing, malformed, unknown or revoked key: one answer for all, so none can be told apart."""


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__("rate limit exceeded")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    key_prefix: str
    tenants: frozenset[str] = frozenset()
    key_id: str = ""

    @property
    def actor(self) -> str:
        return f"key:{self.key_prefix}"


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_service(request: Request) -> RunService:
    service: RunService = request.app.state.service
    return service


def _presented_key(authorization: str | None, x_api_key: str | None, cookie: str | None) -> str | None:
    if authorization:
        scheme, _, value = authorization.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None
    return x_api_key or cookie or None


async def authenticate(
    request: Request,
    engine: Annotated[Engine, Depends(get_engine)],
    authorization: Annotated[str | None, Header(description="`Bearer <api key>`")] = None,
    x_api_key: Annotated[str | None, Header(description="The API key itself")] = None,
    vai_token: Annotated[str | None, Cookie(description="The API key, as a cookie")] = None,
) -> Principal:
    presented = _presented_key(authorization, x_api_key, vai_token)
    if not presented or len(presented) > 200:
        raise Unauthenticated()
    record = await run_in_threadpool(_find_key, engine, presented)
    if record is None:
        raise Unauthenticated()
    limiter: RateLimiter = request.app.state.limiter
    wait = limiter.acquire(str(record.id))
    if wait > 0:
        raise RateLimited(wait)
    # Async on purpose: a context variable set here is seen by the endpoint and its threads, and
    # every transaction they begin runs under row-level security for these tenants.
    tenancy.scope_to(record.tenants)
    return Principal(
        tenant_id=record.tenant_id, key_prefix=record.prefix, tenants=record.tenants, key_id=str(record.id)
    )


def _find_key(engine: Engine, presented: str) -> keys.KeyRecord | None:
    with engine.connect() as conn:
        return keys.find_active(conn, presented)


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ServiceDep = Annotated[RunService, Depends(get_service)]
PrincipalDep = Annotated[Principal, Depends(authenticate)]
