"""What the sync and the async client share, with no I/O: request bodies and query strings, answers
decoded into the server's own models, the SSE frame parser, and the polling schedule of `wait`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import httpx
from pydantic import BaseModel

from orchestrator.client.errors import error_for
from schemas.api import EventView, RunCreateRequest
from schemas.events import TERMINAL_EVENT_TYPES
from schemas.runs import RunStatus

M = TypeVar("M", bound=BaseModel)

IDEMPOTENCY_HEADER = "Idempotency-Key"
TERMINAL_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELED})
DEFAULT_TIMEOUT = 30.0
# The server sends a heartbeat at least every 15 s: a stream silent for this long is dead.
STREAM_READ_TIMEOUT = 60.0
STREAM_RECONNECTS = 5  # failed reconnects in a row before a stream gives up


def client_options(base_url: str, api_key: str, timeout: float) -> dict[str, Any]:
    return {
        "base_url": base_url.rstrip("/"),
        "headers": {"Authorization": f"Bearer {api_key}", "User-Agent": "orchestrator-client"},
        "timeout": timeout,
    }


def raise_for_error(response: httpx.Response) -> None:
    """The typed exception for an error status (see `errors`). The body must have been read."""
    if response.status_code >= 400:
        raise error_for(response)


def decoded(response: httpx.Response, model: type[M]) -> M:
    """The answer as `model`, or the typed exception for an error status."""
    raise_for_error(response)
    return model.model_validate_json(response.content)


def submit_body(
    kind: str,
    params: Mapping[str, Any] | None,
    parent_run_id: UUID | None,
    task: str | None,
    labels: Mapping[str, str] | None,
    priority: int = 0,
    not_before: datetime | None = None,
) -> dict[str, Any]:
    """The JSON body of `POST /v1/runs`, shaped by the server's own request model (so a malformed one
    fails here, before a request is sent)."""
    request = RunCreateRequest(
        kind=kind,
        params=dict(params or {}),
        parent_run_id=parent_run_id,
        task=task,
        labels=dict(labels or {}),
        priority=priority,
        not_before=not_before,
    )
    return request.model_dump(mode="json", exclude_defaults=True)


def idempotency_headers(key: str | None) -> dict[str, str]:
    return {IDEMPOTENCY_HEADER: key} if key is not None else {}


def list_params(
    status: RunStatus | str | None,
    kind: str | None,
    parent_id: UUID | None,
    root_only: bool,
    created_after: datetime | None,
    created_before: datetime | None,
    page_size: int,
) -> dict[str, str]:
    params: dict[str, str] = {"limit": str(page_size)}
    if status is not None:
        params["status"] = RunStatus(status).value
    if kind is not None:
        params["kind"] = kind
    if parent_id is not None:
        params["parent_id"] = str(parent_id)
    if root_only:
        params["root_only"] = "true"
    if created_after is not None:
        params["created_after"] = created_after.isoformat()
    if created_before is not None:
        params["created_before"] = created_before.isoformat()
    return params


def poll_delays(first: float = 0.05, longest: float = 1.0) -> Iterator[float]:
    """`wait`'s pauses between reads: quick at first (most runs are short), then at most `longest`."""
    delay = min(first, longest)
    while True:
        yield delay
        delay = min(delay * 2, longest)


@dataclass
class StreamCursor:
    """Where a run's event stream is: the last event id seen (sent as `Last-Event-ID` on a reconnect)
    and whether the terminal event has come, after which the server closes the stream."""

    last_event_id: str | None = None
    finished: bool = False
    _fields: dict[str, str] = field(default_factory=dict)

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        return headers

    def feed(self, line: str) -> EventView | None:
        """One line of the stream (without its line break); the event when the line ends a frame that
        carries one. Comments (the heartbeats) and frames without data are skipped."""
        if line.startswith(":"):
            return None
        if line:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data" and "data" in self._fields:
                value = self._fields["data"] + "\n" + value
            self._fields[name] = value
            return None
        fields, self._fields = self._fields, {}
        if "data" not in fields:
            return None
        event = EventView.model_validate_json(fields["data"])
        # The id is the event's global position; `position` in the data says the same.
        self.last_event_id = fields.get("id") or str(event.position)
        if event.type in TERMINAL_EVENT_TYPES:
            self.finished = True
        return event
