"""A server span per request when tracing is on (orchestrator.tracing), a child of the caller's
`traceparent` when it sends one. Added only when ORCH_OTEL_ENABLED is set."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator import correlation, tracing

# FastAPI's own OpenTelemetry spans, metrics and logs (recent versions) switch on by themselves once any
# provider is set, and its logs carry exception messages and tracebacks: ORCH_OTEL_ENABLED decides here,
# with the span below (older FastAPI versions take this argument as an unused extra).
NO_NATIVE_TELEMETRY: Any = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


class Traced:
    """Inside RequestId, so the span names the request id; outside CatchAll, so it sees its 500s."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not tracing.enabled():
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers") or []}
        with tracing.span(
            method,
            parent=headers,
            server=True,
            **{
                "http.request.method": method,
                "url.path": scope.get("path"),
                "orch.request_id": correlation.current(),
            },
        ) as span:

            async def recorded(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    span.set("http.response.status_code", status)
                    if status >= 500:
                        span.fail(str(status))
                await send(message)

            await self.app(scope, receive, recorded)
            # The route's template, not the path: span names must not hold ids.
            route = scope.get("route")
            template = getattr(route, "path", None)
            if isinstance(template, str):
                span.rename(f"{method} {template}")
                span.set("http.route", template)
