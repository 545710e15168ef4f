"""Request guards that run before any parsing: a body-size cap (413), UTF-8 only (415 for another declared
charset, 422 for a body that is not UTF-8 text) and a JSON nesting cap (422).

Python's JSON parser recurses, so a body nested thousands deep would cost a RecursionError (a 500)
or worse; counting brackets first is linear and cheap. The count is only right if it reads the text the
parser will read, and `json.loads(bytes)` guesses the encoding: UTF-16 and UTF-32 (BOM or not) and UTF-8
with a BOM are all decoded, so a UTF-16 body's brackets hide behind NUL bytes. RFC 8259 says JSON
between systems MUST be UTF-8 without a BOM, so that is all we take: then the bytes scanned here are
exactly the text parsed.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_JSON_DEPTH = 64
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF8_NAMES = ("utf-8", "utf8")
TOO_LARGE = {"detail": "request body too large", "error_code": "payload_too_large"}
UNSUPPORTED_CHARSET = {"detail": "request bodies must be UTF-8 JSON", "error_code": "unsupported_media_type"}


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether `body`, UTF-8 JSON text, nests arrays and objects deeper than `limit` (strings skipped)."""
    depth, in_string, escaped = 0, False, False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


def is_utf8_json_text(body: bytes) -> bool:
    """UTF-8, no BOM, no NUL byte. JSON text never holds a raw NUL (U+0000 in a string must be escaped),
    while UTF-16 or UTF-32 text of ASCII is full of them; and with none in the first two bytes and no
    BOM, `json.loads` decodes as UTF-8, the text validated here."""
    if b"\x00" in body or body.startswith(_UTF8_BOM):
        return False
    try:
        body.decode("utf-8")  # strict: encoded surrogates are refused too
    except UnicodeDecodeError:
        return False
    return True


def declared_charset(content_type: bytes | None) -> str | None:
    """The `charset` parameter of a Content-Type header, lowercased and unquoted; None when absent."""
    if not content_type:
        return None
    for param in content_type.decode("latin-1").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').strip().lower()
    return None


def _body_error(msg: str, kind: str) -> dict[str, object]:
    return {"detail": [{"loc": ["body"], "msg": msg, "type": kind}]}


def is_multipart(content_type: bytes | None) -> bool:
    return content_type is not None and content_type.split(b";")[0].strip().lower() == b"multipart/form-data"


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        max_depth: int = MAX_JSON_DEPTH,
        upload_max_bytes: int = 0,
        upload_paths: tuple[str, ...] = (),
        path_max_bytes: dict[str, int] | None = None,
    ) -> None:
        self.app, self.default_max_bytes, self.max_depth = app, max_bytes, max_depth
        # Only these routes take multipart uploads; everywhere else a body is JSON under the JSON cap.
        self.upload_max_bytes, self.upload_paths = upload_max_bytes or max_bytes, upload_paths
        # Bulk endpoints (records: 10,000 per call) take bodies larger than the default cap, by exact path.
        self.path_max_bytes = path_max_bytes or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        max_bytes = self.path_max_bytes.get(scope.get("path", ""), self.default_max_bytes)
        headers = dict(scope.get("headers") or [])
        if scope.get("path") in self.upload_paths and is_multipart(headers.get(b"content-type")):
            await self._upload(scope, receive, send, headers)
            return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await _reply(send, 413, TOO_LARGE)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_bytes:
                await _reply(send, 413, TOO_LARGE)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        # Every body is checked, whatever its declared content type: FastAPI parses `Application/JSON`
        # (and more) as JSON too, and every route here takes JSON.
        if body:
            charset = declared_charset(headers.get(b"content-type"))
            if charset is not None and charset not in _UTF8_NAMES:
                await _reply(send, 415, UNSUPPORTED_CHARSET)
                return
            if not is_utf8_json_text(body):
                await _reply(send, 422, _body_error("body is not UTF-8 JSON text", "json_invalid"))
                return
            if json_depth_exceeds(body, self.max_depth):
                msg = f"JSON nested deeper than {self.max_depth} levels"
                await _reply(send, 422, _body_error(msg, "value_error"))
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _upload(self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes]) -> None:
        """A file upload is not JSON and may be far larger than any JSON body: it streams through (the
        multipart parser spools it to disk) under its own cap, counted as it arrives, never buffered."""
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.upload_max_bytes:
            await _reply(send, 413, TOO_LARGE)
            return
        size = 0
        started = False

        async def counted() -> Message:
            nonlocal size
            message = await receive()
            size += len(message.get("body", b""))
            if size > self.upload_max_bytes:
                raise UploadTooLarge()
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except UploadTooLarge:
            if not started:
                await _reply(send, 413, TOO_LARGE)


class UploadTooLarge(Exception):
    """Raised from `receive` once an upload passes its cap; the route reading it answers 413."""


async def _reply(send: Send, status: int, payload: object) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
