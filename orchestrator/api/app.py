"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.api import errors, health, runs
from orchestrator.services import RunService
from orchestrator.settings import Settings
from orchestrator.store.engine import make_engine


class BodyLimit:
    """Answers 413 once a request body passes the cap, declared (Content-Length) or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge()
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._reject(send)

    @staticmethod
    async def _reject(send: Send) -> None:
        body = b'{"detail":"request body too large","error_code":"payload_too_large"}'
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    if not settings.database_url:
        raise RuntimeError("create_app needs a resolved database_url")
    app = FastAPI(
        title="Orchestrator",
        version="0.1.0",
        description="Event-sourced run orchestrator: submit runs, follow their events, read their state.",
    )
    app.state.settings = settings
    app.state.engine = engine or make_engine(settings.database_url)
    app.state.service = RunService(app.state.engine, settings)
    errors.install(app)
    app.include_router(health.router)
    app.include_router(runs.router)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app
