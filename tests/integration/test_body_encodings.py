"""Bodies are UTF-8 JSON or refused before parsing, so the depth cap measures what the parser reads.

`json.loads(bytes)` would decode UTF-16 and UTF-32 (with or without a BOM) and UTF-8 with a BOM; the
depth scan reads bytes, so a UTF-16 body once slipped past it (201 at 100 deep, a 500 at 400 deep).
"""

from __future__ import annotations

import codecs
import json
import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from orchestrator.api.guards import MAX_JSON_DEPTH

Encoder = Callable[[str], bytes]

ENCODINGS: dict[str, Encoder] = {
    "utf-8": lambda text: text.encode("utf-8"),
    "utf-8-sig": lambda text: text.encode("utf-8-sig"),
    "utf-16-le": lambda text: text.encode("utf-16-le"),
    "utf-16-be": lambda text: text.encode("utf-16-be"),
    "utf-16-le-bom": lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
    "utf-16-be-bom": lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
    "utf-32-le": lambda text: text.encode("utf-32-le"),
    "utf-32-be": lambda text: text.encode("utf-32-be"),
    "utf-32-le-bom": lambda text: codecs.BOM_UTF32_LE + text.encode("utf-32-le"),
    "utf-32-be-bom": lambda text: codecs.BOM_UTF32_BE + text.encode("utf-32-be"),
}
DEPTHS = (MAX_JSON_DEPTH + 1, 100, 400, 10_000)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# U+2200 is the bytes 00 22 in UTF-16-LE (22 00 in BE, and so on): a byte-wise scan sees a quote that
# is not one, takes the brackets after it for a string, and measured such bodies as flat.
DECOY = "\u2200"

# Each body nests `depth` levels in all, the route's own objects included, behind the decoy.
ROUTES: dict[str, Callable[[int], str]] = {
    "/v1/runs": lambda d: f'{{"kind": "workflow", "params": {{"a": "{DECOY}", "x": ' + _nested(d - 2) + "}}",
    "/api/v1/data-products/runs": lambda d: (
        f'{{"taskName": "sleep", "context": {{"a": "{DECOY}", "duration": ' + _nested(d - 2) + "}}"
    ),
    "/v1/list-jobs": lambda d: f'{{"jobId": "{DECOY}", "corpusId": ' + _nested(d - 1) + "}",
}


def _depth(text: str) -> int:
    deepest = depth = 0
    for char in text:  # the bodies above hold no string with a bracket
        depth += char in "[{"
        depth -= char in "]}"
        deepest = max(deepest, depth)
    return deepest


def _post(client: TestClient, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, object, float]:
    started = time.monotonic()
    response = client.post(path, content=body, headers={**headers, "Content-Type": "application/json"})
    return response.status_code, response.json(), time.monotonic() - started


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("path", list(ROUTES))
def test_too_deep_is_refused_in_every_encoding(
    app_client: TestClient, auth: dict[str, str], path: str, encoding: str
) -> None:
    for depth in DEPTHS:
        text = ROUTES[path](depth)
        assert _depth(text) == depth
        status, body, took = _post(app_client, path, ENCODINGS[encoding](text), auth)
        assert status in (415, 422), (depth, status, body)
        assert took < 0.5, (depth, took)
        # The guard's answer, not a field's validation error further in.
        assert isinstance(body, dict) and body["detail"][0]["loc"] == ["body"], (depth, body)
        if encoding == "utf-8":
            assert body == {
                "detail": [
                    {
                        "loc": ["body"],
                        "msg": f"JSON nested deeper than {MAX_JSON_DEPTH} levels",
                        "type": "value_error",
                    }
                ]
            }


@pytest.mark.parametrize("encoding", [e for e in ENCODINGS if e != "utf-8"])
def test_only_utf8_without_a_bom_is_accepted(
    app_client: TestClient, auth: dict[str, str], encoding: str
) -> None:
    # Shallow and otherwise valid: the encoding alone is refused, before parsing.
    text = json.dumps({"kind": "sleep", "params": {"duration": 0}})
    status, body, _ = _post(app_client, "/v1/runs", ENCODINGS[encoding](text), auth)
    assert status == 422, body
    item = {"loc": ["body"], "msg": "body is not UTF-8 JSON text", "type": "json_invalid"}
    assert body == {"detail": [item]}


@pytest.mark.parametrize(
    "raw",
    [
        b'{"kind": "sleep", "params": {"x": "\xed\xa0\x80"}}',  # an encoded surrogate
        b'{"kind": "sleep", "params": {"x": "\xff"}}',  # not UTF-8 at all
        b'{"kind": "sleep", "params": {"x": "a\x00b"}}',  # a raw NUL, never valid JSON
    ],
)
def test_bytes_that_are_not_utf8_json_text_are_refused(
    app_client: TestClient, auth: dict[str, str], raw: bytes
) -> None:
    status, body, _ = _post(app_client, "/v1/runs", raw, auth)
    assert status == 422, body


@pytest.mark.parametrize("charset", ["utf-16", "UTF-32LE", '"latin-1"', "iso-8859-1"])
def test_another_declared_charset_is_415(app_client: TestClient, auth: dict[str, str], charset: str) -> None:
    body = json.dumps({"kind": "sleep", "params": {"duration": 0}}).encode()
    headers = {**auth, "Content-Type": f"application/json; charset={charset}"}
    response = app_client.post("/v1/runs", content=body, headers=headers)
    assert response.status_code == 415, response.text
    assert response.json() == {
        "detail": "request bodies must be UTF-8 JSON",
        "error_code": "unsupported_media_type",
    }


@pytest.mark.parametrize("charset", [None, "utf-8", "UTF-8", '"utf-8"', "utf8"])
def test_shallow_utf8_still_works(app_client: TestClient, auth: dict[str, str], charset: str | None) -> None:
    body = json.dumps({"kind": "workflow", "params": {"note": "h\u00e9 \u2603 \U0001f600"}})
    content_type = "application/json" + (f"; charset={charset}" if charset else "")
    response = app_client.post(
        "/v1/runs", content=body.encode(), headers={**auth, "Content-Type": content_type}
    )
    assert response.status_code == 201, response.text
    assert response.json()["params"]["note"] == "h\u00e9 \u2603 \U0001f600"


def test_exactly_the_cap_is_accepted(app_client: TestClient, auth: dict[str, str]) -> None:
    text = ROUTES["/v1/runs"](MAX_JSON_DEPTH)
    assert _depth(text) == MAX_JSON_DEPTH
    status, body, _ = _post(app_client, "/v1/runs", text.encode(), auth)
    assert status == 201, body
