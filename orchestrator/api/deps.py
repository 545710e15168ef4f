"""Request dependencies: settings, engine, service, and the caller's tenant from its API key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import structlog
from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine

from orchestrator.api.key_cache import KeyCache
from orchestrator.api.ratelimit import RateLimiter
from orchestrator.services import RunService
from orchestrator.settings import Settings
from orchestrator.store import key_format, keys, tenancy
from orchestrator.store.keys import Unauthenticated

__all__ = ["Principal", "RateLimited", "Unauthenticated", "authenticate"]


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__("rate limit exceeded")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    key_prefix: str
    tenants: frozenset[str] = frozenset()
    key_name: str | None = None

    @property
    def actor(self) -> str:
        return f"key:{self.key_prefix}"


# Coroutines, though they only read app.state: FastAPI runs a plain `def` dependency in the thread pool, a
# thread hop per dependency per request.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_service(request: Request) -> RunService:
    service: RunService = request.app.state.service
    return service


# The three ways to present a key, declared as OpenAPI security schemes so that /docs offers Authorize and
# marks every authenticated operation. None of them refuses by itself (`auto_error=False`): `authenticate`
# decides, so every failure gets the same 401 body.
BEARER = HTTPBearer(scheme_name="bearer", description="`Authorization: Bearer <api key>`", auto_error=False)
API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key", scheme_name="apiKeyHeader", description="The API key itself", auto_error=False
)
API_KEY_COOKIE = APIKeyCookie(
    name="vai_token", scheme_name="apiKeyCookie", description="The API key, as a cookie", auto_error=False
)


def _presented_key(
    request: Request, bearer: HTTPAuthorizationCredentials | None, x_api_key: str | None, cookie: str | None
) -> str | None:
    if request.headers.get("authorization"):
        # An Authorization header decides alone: one that is not `Bearer <key>` is refused even when another
        # credential comes with it, rather than quietly replaced by that one.
        return bearer.credentials if bearer else None
    return x_api_key or cookie or None


async def authenticate(
    request: Request,
    engine: Annotated[Engine, Depends(get_engine)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    x_api_key: Annotated[str | None, Security(API_KEY_HEADER)],
    vai_token: Annotated[str | None, Security(API_KEY_COOKIE)],
) -> Principal:
    presented = _presented_key(request, bearer, x_api_key, vai_token)
    if not presented or len(presented) > 200:
        raise Unauthenticated()
    if not key_format.is_well_formed(presented):
        raise Unauthenticated()
    state = request.app.state
    record, wait = await run_in_threadpool(
        _find_key_and_take_token, engine, state.key_cache, state.limiter, key_format.digest(presented)
    )
    if record is None:
        raise Unauthenticated()
    if wait > 0:
        raise RateLimited(wait)
    # Async on purpose: a context variable set here is seen by the endpoint and its threads, and every
    # transaction they begin runs under row-level security for these tenants, once it has checked that
    # the key is still active (a key from the cache may have been revoked since).
    tenancy.scope_to(record.tenants, record.id)
    structlog.contextvars.bind_contextvars(tenant_id=record.tenant_id)  # the request's lines from here on
    return Principal(
        tenant_id=record.tenant_id, key_prefix=record.prefix, tenants=record.tenants, key_name=record.name
    )


def _find_key_and_take_token(
    engine: Engine, cache: KeyCache, limiter: RateLimiter, digest: str
) -> tuple[keys.KeyRecord | None, float]:
    """The key, and the wait its bucket asks for (0: go on): one worker-thread hop for both, since the
    shared bucket is a Redis round trip."""
    record = cache.get(digest)
    if record is None:
        # Autocommit: one statement needs no transaction, and BEGIN and ROLLBACK around it were two of
        # the three round trips of every request's key lookup.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            record = keys.find_active_by_digest(conn, digest)
        if record is None:
            return None, 0.0
        cache.put(digest, record)
    return record, limiter.acquire(str(record.id))


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ServiceDep = Annotated[RunService, Depends(get_service)]
PrincipalDep = Annotated[Principal, Depends(authenticate)]
