"""The API's error answers as exceptions, one class per answer a caller handles differently.

Every one carries the HTTP `status`, the server's `detail` (a sentence; for a 422 also `errors`, the
validation errors) and its `error_code`, so a caller can branch on the type and still log what was said.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
from pydantic import TypeAdapter, ValidationError

from schemas.api import ValidationErrorItem

_VALIDATION_ITEMS = TypeAdapter(list[ValidationErrorItem])


class ClientError(Exception):
    """Anything the client raises on purpose."""


class ApiError(ClientError):
    """An error status from the API (one without a class of its own is this one)."""

    def __init__(self, status: int, detail: str, error_code: str | None = None) -> None:
        super().__init__(f"HTTP {status}: {detail}" + (f" ({error_code})" if error_code else ""))
        self.status = status
        self.detail = detail
        self.error_code = error_code


class Unauthorized(ApiError):
    """401: the key is missing, unknown or revoked (the server does not say which)."""


class NotFound(ApiError):
    """404: no such run for this key's tenant (another tenant's run answers the same)."""


class Conflict(ApiError):
    """409: the run's state does not allow it, or an `Idempotency-Key` was reused with another body
    (`error_code` `idempotency_conflict`)."""


class PayloadTooLarge(ApiError):
    """413: the request body is over the server's `ORCH_MAX_BODY_BYTES`."""


class ValidationFailed(ApiError):
    """422: the request was refused before anything was recorded; `errors` says where and why."""

    def __init__(self, status: int, errors: list[ValidationErrorItem]) -> None:
        summary = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in errors) or "invalid input"
        super().__init__(status, summary, "validation_failed")
        self.errors = errors


class _RetryLater(ApiError):
    def __init__(self, status: int, detail: str, error_code: str | None, retry_after: float) -> None:
        super().__init__(status, detail, error_code)
        self.retry_after = retry_after  # seconds, from the `Retry-After` header


class RateLimited(_RetryLater):
    """429: the key's request rate, or its number of open streams, is over the limit."""


class ServiceUnavailable(_RetryLater):
    """503: the database is down, or the server has too many open streams; retry after `retry_after`."""


class ServerError(ApiError):
    """Any other 5xx: the server failed (its body never carries more than `internal error`)."""


class WaitTimeout(ClientError, TimeoutError):
    """`wait` gave up before the run reached a terminal state; `run` is the last state it read."""

    def __init__(self, run: Any, timeout: float) -> None:
        super().__init__(f"run {run.id} still {run.status.value} after {timeout:g}s")
        self.run = run


_BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
}


def _retry_after(response: httpx.Response) -> float:
    try:
        value = float(response.headers.get("Retry-After", "1"))
    except ValueError:
        return 1.0  # an HTTP date: not one this server sends
    return value if math.isfinite(value) and value >= 0 else 1.0


def error_for(response: httpx.Response) -> ApiError:
    """The exception for an error answer (status >= 400); the body must have been read."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    detail: Any = body.get("detail") if isinstance(body, dict) else None
    code = body.get("error_code") if isinstance(body, dict) else None
    code = code if isinstance(code, str) else None
    if status == 422:
        try:
            errors = _VALIDATION_ITEMS.validate_python(detail)
        except ValidationError:
            errors = []
        return ValidationFailed(status, errors)
    text = detail if isinstance(detail, str) else (response.text[:200] or response.reason_phrase)
    if status == 429:
        return RateLimited(status, text, code, _retry_after(response))
    if status == 503:
        return ServiceUnavailable(status, text, code, _retry_after(response))
    if status in _BY_STATUS:
        return _BY_STATUS[status](status, text, code)
    return (ServerError if status >= 500 else ApiError)(status, text, code)
