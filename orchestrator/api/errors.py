"""Exception -> response mapping. Bodies carry an error_code and a plain message, never a traceback,
SQL text or the offending input."""

from __future__ import annotations

import math
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.api.cursor import InvalidCursor
from orchestrator.api.deps import RateLimited, Unauthenticated
from orchestrator.domain.errors import DomainError
from orchestrator.services import (
    IdempotencyConflict,
    InvalidRequest,
    RunContended,
    RunNotFound,
    StoreUnavailable,
)
from schemas.api import ErrorBody, ValidationErrorBody

log = structlog.get_logger(__name__)

UNAUTHENTICATED_BODY = {"detail": "missing or invalid API key", "error_code": "unauthenticated"}
NOT_FOUND_BODY = {"detail": "run not found", "error_code": "not_found"}


class NotFound(Exception):
    """Something other than a run that the caller's tenant does not have (a feature, a run's result)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} not found")
        self.what = what


def _error(status: int, detail: str, code: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail, "error_code": code}, status_code=status, headers=headers)


def validation_items(errors: Any) -> list[dict[str, Any]]:
    """Only loc, msg and type: the input itself may be large or secret, so it is never echoed."""
    return [{"loc": list(e["loc"]), "msg": str(e["msg"]), "type": str(e["type"])} for e in errors]


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_items(exc.errors())}, status_code=422)

    @app.exception_handler(InvalidRequest)
    async def _invalid(_: Request, exc: InvalidRequest) -> JSONResponse:
        return JSONResponse({"detail": validation_items(exc.errors)}, status_code=422)

    @app.exception_handler(InvalidCursor)
    async def _cursor(_: Request, exc: InvalidCursor) -> JSONResponse:
        item = {"loc": ["query", "cursor"], "msg": str(exc), "type": "value_error"}
        return JSONResponse({"detail": [item]}, status_code=422)

    @app.exception_handler(Unauthenticated)
    async def _unauthenticated(_: Request, __: Unauthenticated) -> JSONResponse:
        return JSONResponse(UNAUTHENTICATED_BODY, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(RateLimited)
    async def _rate_limited(_: Request, exc: RateLimited) -> JSONResponse:
        retry = str(max(1, math.ceil(exc.retry_after)))
        return _error(429, "rate limit exceeded, retry later", "rate_limited", {"Retry-After": retry})

    @app.exception_handler(RunNotFound)
    async def _not_found(_: Request, __: RunNotFound) -> JSONResponse:
        return JSONResponse(NOT_FOUND_BODY, status_code=404)

    @app.exception_handler(NotFound)
    async def _other_not_found(_: Request, exc: NotFound) -> JSONResponse:
        return _error(404, str(exc), "not_found")

    @app.exception_handler(DomainError)
    async def _conflict(_: Request, exc: DomainError) -> JSONResponse:
        return _error(409, str(exc), exc.code)

    @app.exception_handler(RunContended)
    async def _contended(_: Request, __: RunContended) -> JSONResponse:
        # The run kept changing under the request (a job writing fast); nothing was applied.
        return _error(409, "the run is changing too fast, retry", "concurrent_update", {"Retry-After": "1"})

    @app.exception_handler(IdempotencyConflict)
    async def _idempotency(_: Request, exc: IdempotencyConflict) -> JSONResponse:
        return _error(409, str(exc), "idempotency_conflict")

    @app.exception_handler(OperationalError)
    @app.exception_handler(StoreUnavailable)
    async def _db_down(_: Request, __: Exception) -> JSONResponse:
        log.warning("api.database_unavailable")
        return _error(503, "database unavailable, retry shortly", "service_unavailable", {"Retry-After": "2"})

    @app.exception_handler(DBAPIError)
    async def _db_error(_: Request, __: DBAPIError) -> JSONResponse:
        log.error("api.database_error")
        return _error(500, "internal error", "internal_error")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # Only FastAPI raises it, for a body it could not decode (not UTF-8, say): that is a body that
            # is not JSON, answered like the malformed JSON FastAPI reports as a 422.
            item = {"loc": ["body"], "msg": "body is not valid JSON", "type": "json_invalid"}
            return JSONResponse({"detail": [item]}, status_code=422)
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "error"
        )
        return _error(exc.status_code, str(exc.detail), code, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("api.unhandled", error_type=type(exc).__name__)
        return _error(500, "internal error", "internal_error")


# OpenAPI `responses` entries for the canonical error answers; routes pick the ones they can give.
RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
}
RESPONSES: dict[int, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing, invalid or revoked API key"},
    404: {"model": ErrorBody, "description": "No such run for this tenant"},
    409: {"model": ErrorBody, "description": "The run's state does not allow it"},
    413: {"model": ErrorBody, "description": "Request body over the size limit"},
    422: {"model": ValidationErrorBody, "description": "Invalid input"},
    429: {"model": ErrorBody, "description": "Request rate of this API key exceeded", "headers": RETRY_AFTER},
    503: {"model": ErrorBody, "description": "Database unavailable, retry shortly", "headers": RETRY_AFTER},
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that can answer `codes` (merge an entry over one to reword it)."""
    return {code: dict(RESPONSES[code]) for code in codes}
