"""A typed Python client of the canonical API (/v1/runs, /v1/schedules), blocking (`Client`) and asyncio
(`AsyncClient`).

Its models are the server's own (`schemas.api`), re-exported here, so a field the server adds is a field
the client has. It depends on httpx, pydantic and `schemas` only, never on the server's code.

    with Client("http://127.0.0.1:8000", api_key) as client:
        run = client.submit("sleep", {"duration": 1}, idempotency_key="nightly-2026-12-02")
        done = client.wait(run.id, timeout=60)
"""

from orchestrator.client.aio import AsyncClient
from orchestrator.client.errors import (
    ApiError,
    Conflict,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
    WaitTimeout,
)
from orchestrator.client.sync import Client
from schemas.api import (
    BulkCancelRequest,
    BulkCancelResponse,
    EventView,
    RunBatchItem,
    RunBatchResponse,
    RunPage,
    RunView,
)
from schemas.runs import RunStatus
from schemas.schedules import ScheduleCreateRequest, ScheduleView

__all__ = [
    "ApiError",
    "AsyncClient",
    "BulkCancelRequest",
    "BulkCancelResponse",
    "Client",
    "Conflict",
    "EventView",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "RunBatchItem",
    "RunBatchResponse",
    "RunPage",
    "RunStatus",
    "RunView",
    "ScheduleCreateRequest",
    "ScheduleView",
    "ServiceUnavailable",
    "Unauthorized",
    "ValidationFailed",
    "WaitTimeout",
]
