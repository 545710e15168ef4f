"""Every request gets a request id: the caller's `X-Correlation-ID` when it sends a usable one, a new one
otherwise; bound for the request's log lines and events, and echoed on every response, errors included.

A header that is present but unusable (too long, odd characters) is a 422, not replaced quietly: a caller
who sends an id means to find it again, and a silent substitute would break the trail unseen. The 422
still carries a fresh id, so even that answer can be found in the logs.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator import correlation

_HEADER = correlation.HEADER.lower().encode()


class RequestId:
    """Outside every other middleware of ours, so the 500 of CatchAll and the guards' 413s and 422s carry
    the id and are logged with it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = [value for name, value in scope.get("headers") or [] if name == _HEADER]
        problem = _problem(given)
        request_id = given[0].decode("latin-1") if given and problem is None else correlation.new_id()
        echoed = (_HEADER, request_id.encode())

        async def with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), echoed]}
            await send(message)

        with correlation.bound(request_id):
            if problem is not None:
                await _invalid(with_id, problem)
                return
            await self.app(scope, receive, with_id)


def _problem(given: list[bytes]) -> str | None:
    if not given:
        return None
    if len(given) > 1:
        return "send the header once"
    return correlation.problem(given[0].decode("latin-1"))


async def _invalid(send: Send, problem: str) -> None:
    msg = f"{correlation.HEADER}: {problem}"
    detail = [{"loc": ["header", correlation.HEADER], "msg": msg, "type": "value_error"}]
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 422, "headers": headers})
    await send({"type": "http.response.body", "body": body})
