"""The last stop for an exception no handler took: a 500 JSON answer and one log line, nothing more.

Starlette's ServerErrorMiddleware, outside every other middleware, answers such an exception through
the app's `Exception` handler and then raises it again so that the server logs it, and uvicorn logs it
with its whole traceback (SQL, parameters, local values). This middleware sits just inside it and does
not raise again.
"""

from __future__ import annotations

import json

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger(__name__)

INTERNAL_ERROR = json.dumps({"detail": "internal error", "error_code": "internal_error"}).encode()


class CatchAll:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            # The traceback rides along as exc_info; the log formatter shows only the type unless
            # ORCH_LOG_TRACEBACKS is set.
            log.error("api.unhandled", error_type=type(exc).__name__, path=scope.get("path"), exc_info=exc)
            if started:  # too late for a status: the client sees the response cut short
                return
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(INTERNAL_ERROR)).encode()),
            ]
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": INTERNAL_ERROR})
