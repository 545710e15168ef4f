"""The `runs` commands' way to the API: where it is, which key to send, and every failure of a call turned
into one `CliError` sentence that says what went wrong and what to do."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from orchestrator.cli.common import CliError, say

DEFAULT_URL = "http://127.0.0.1:8000"
URL_FILE = "api-url"  # written by `up` once it serves, removed when it stops cleanly
KEY_FILE = "dev-api-key"  # the development key `up` creates


class ApiError(CliError):
    """The API answered with an error status; `status` lets a caller retry the 5xx ones."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Target:
    url: str
    key: str
    url_hint: str  # what to check when the URL cannot be reached, naming where it came from
    key_from: str


def resolve_target(url: str | None, key: str | None, data_dir: Path) -> Target:
    """--url/ORCH_API_URL, else what `up` recorded in the data folder, else the default; the same for the
    key with the folder's development key. Typer hands over --url and its variable as one value."""
    folder = data_dir.resolve()
    url_file, key_file = folder / URL_FILE, folder / KEY_FILE
    used_folder = False
    if url:
        hint = "is it running? Check --url / ORCH_API_URL"
    elif url_file.is_file():
        url, used_folder = url_file.read_text().strip(), True
        hint = f"the URL is the one `orchestrator up` recorded in {url_file}: is it still running?"
    else:
        url = DEFAULT_URL
        hint = f"no `orchestrator up` recorded a URL in {folder}: pass --url or set ORCH_API_URL"
    if not url.startswith(("http://", "https://")):
        raise CliError(f"API URL {url!r} must start with http:// or https://")
    if key:
        key_from = "--key/ORCH_API_KEY"
    elif key_file.is_file():
        key, key_from, used_folder = key_file.read_text().strip(), str(key_file), True
    else:
        raise CliError(
            f"no API key: pass --key or set ORCH_API_KEY (there is no development key {key_file}; "
            "`orchestrator up` writes one, `orchestrator keys create` makes others)"
        )
    if used_folder:
        say(f"data folder: {folder}")
    return Target(url.rstrip("/"), key, hint, key_from)


class Api:
    """An HTTP client of the canonical API whose calls either return the decoded answer or raise
    `CliError`; transport errors are left to `stream` callers, which may want to resume."""

    def __init__(self, target: Target, timeout: float = 30.0) -> None:
        self.target, self.timeout = target, timeout
        self._client = httpx.Client(
            base_url=target.url, headers={"Authorization": f"Bearer {target.key}"}, timeout=timeout
        )

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._client.close()

    def call(self, method: str, path: str, *, what: str = "", **kwargs: Any) -> Any:
        """One request; `what` names the thing asked for ("run 123") in a 404 message."""
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from None
        return self.decoded(response, what)

    @contextmanager
    def stream(
        self, path: str, headers: dict[str, str], read_timeout: float, what: str = ""
    ) -> Iterator[httpx.Response]:
        """A streamed GET whose status is checked like `call`'s; transport errors propagate."""
        timeout = httpx.Timeout(self.timeout, read=read_timeout)
        with self._client.stream("GET", path, headers=headers, timeout=timeout) as response:
            if response.status_code >= 400:
                response.read()
                self.decoded(response, what)
            yield response

    def unreachable(self, exc: httpx.TransportError) -> CliError:
        url = self.target.url
        if isinstance(exc, httpx.TimeoutException):
            return CliError(
                f"the API at {url} did not answer within {self.timeout:g}s ({type(exc).__name__})"
            )
        reason = str(exc) or type(exc).__name__
        return CliError(f"cannot reach the API at {url} ({reason}); {self.target.url_hint}")

    def decoded(self, response: httpx.Response, what: str) -> Any:
        status = response.status_code
        if status < 400:
            try:
                return response.json()
            except ValueError:
                raise CliError(
                    f"the server at {self.target.url} answered HTTP {status} with something that is not "
                    "JSON: is this the orchestrator's API?"
                ) from None
        detail = _detail(response)
        if status == 401:
            message = (
                f"the API at {self.target.url} refused the key from {self.target.key_from} (401): "
                "pass a valid --key or set ORCH_API_KEY"
            )
        elif status == 404 and what:
            message = f"{what} not found (404): it does not exist, or belongs to another tenant"
        elif status == 429:
            retry = response.headers.get("Retry-After", "a moment")
            message = f"rate limited (429): {detail}; retry after {retry} s"
        elif status >= 500:
            message = f"the API at {self.target.url} failed (HTTP {status}): {detail}"
        else:
            message = f"the API refused the request (HTTP {status}): {detail}"
        raise ApiError(message, status)


def _detail(response: httpx.Response) -> str:
    """The error's own words: FastAPI's `detail` (a string, or a list of validation errors)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return detail if isinstance(detail, str) else json.dumps(detail)
