"""Run events as Server-Sent Events over HTTP: the canonical `GET /v1/runs/{id}/stream`, and the response
every surface's event stream is built with (data-products' `/runs/{id}/events` too). The core is `sse`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy.engine import Engine
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from orchestrator.api import sse
from orchestrator.api.deps import EngineDep, PrincipalDep
from orchestrator.api.errors import RESPONSES, responses
from orchestrator.api.routing import api_router
from orchestrator.services import RunNotFound
from orchestrator.settings import Settings
from orchestrator.store.events import RecordedEvent

router = api_router(prefix="/v1/runs", tags=["runs"])

STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/event-stream": {}},
        "description": "One SSE event per log event (`id` = global position, `event` = type, `data` = JSON);"
        " the stream ends after the terminal event.",
    },
    **responses(401, 404, 422, 429, 503),
    429: {**RESPONSES[429], "description": "Too many open streams, or requests, for this API key"},
    503: {**RESPONSES[503], "description": "Too many open streams on this server, or the database is down"},
}


class _StreamResponse(EventSourceResponse):
    """Gives the stream's slot back however the response ends: finished, disconnected, timed out or failed.

    Releasing in the body generator alone would leak the slot when the client leaves before the generator
    first runs, since a generator that never started has no `finally` to run.
    """

    def __init__(
        self, content: AsyncIterator[ServerSentEvent], release: Callable[[], None], **kw: Any
    ) -> None:
        super().__init__(content, **kw)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


async def run_event_response(
    request: Request, engine: Engine, tenant_id: str, key: str, run_id: UUID, last_event_id: str | None
) -> Response:
    """The SSE response for one run of the tenant's: 404 before the stream starts if it has no such run,
    429/503 when the key's or the process's stream cap is reached."""
    state = request.app.state
    settings: Settings = state.settings
    hub: sse.StreamHub = state.stream_hub
    position = sse.parse_last_event_id(last_event_id)
    start = await run_in_threadpool(sse.resume_point, engine, tenant_id, run_id, position)
    if start is None:
        raise RunNotFound(str(run_id))
    try:
        release = await run_in_threadpool(state.stream_slots.acquire, key, settings)
    except sse.StreamLimitReached as exc:
        return JSONResponse(exc.body, status_code=exc.status, headers={"Retry-After": "5"})

    reads: sse.SharedReads = state.stream_reads

    async def read(after: int, limit: int) -> list[RecordedEvent]:
        return await reads.read(run_id, tenant_id, after, limit)

    async def body() -> AsyncIterator[ServerSentEvent]:
        if start.finished:
            return
        with hub.subscribe(run_id) as wake:
            async for event in sse.RunEventStream(read, wake, start.after, settings).events():
                yield sse.to_sse(event)

    return _StreamResponse(
        body(),
        release,
        ping=settings.sse_heartbeat_seconds,
        ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
        send_timeout=settings.sse_send_timeout_seconds,
    )


@router.get("/{run_id}/stream", response_class=Response, responses=STREAM_RESPONSES)
async def stream_run(
    run_id: UUID,
    request: Request,
    principal: PrincipalDep,
    engine: EngineDep,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    """The run's events after `Last-Event-ID` (a position; the whole log without it), then live ones."""
    return await run_event_response(
        request, engine, principal.tenant_id, principal.key_prefix, run_id, last_event_id
    )
