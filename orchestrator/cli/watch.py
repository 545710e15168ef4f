"""`runs watch`: follow a run's Server-Sent Events, resuming after a drop, giving up after a few drops."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from orchestrator.cli.api_client import Api, ApiError
from orchestrator.cli.common import CliError, say
from schemas.events import TERMINAL_EVENT_TYPES

MAX_FAILED_RECONNECTS = 5
# The server sends a heartbeat at least every 15 s; a connection silent for longer is dead (half-open).
READ_TIMEOUT_SECONDS = 45.0


@dataclass
class Backoff:
    """Counts consecutive attempts that brought nothing new and spaces them 0.5, 1, 2, 4 ... s apart;
    any event received starts the count again."""

    limit: int = MAX_FAILED_RECONNECTS
    base: float = 0.5
    failures: int = 0

    def succeeded(self) -> None:
        self.failures = 0

    def next_delay(self) -> float | None:
        """Record a failure: the pause before the next attempt, or None when it is time to give up."""
        self.failures += 1
        if self.failures > self.limit:
            return None
        return float(self.base * 2 ** (self.failures - 1))


def follow(
    api: Api,
    run_id: str,
    on_event: Callable[[dict[str, Any]], None],
    backoff: Backoff,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Hand the run's events to `on_event` until its terminal one, whose type is returned."""
    last_id: str | None = None
    last_type = ""
    connected = False
    while True:
        headers = {"Last-Event-ID": last_id} if last_id else {}
        problem = "the stream ended before the run did"
        try:
            stream = api.stream(f"/v1/runs/{run_id}/stream", headers, READ_TIMEOUT_SECONDS, f"run {run_id}")
            with stream as response:
                connected = True
                for event_id, event in sse_events(response.iter_lines()):
                    last_id, last_type = event_id, str(event.get("type", ""))
                    backoff.succeeded()
                    on_event(event)
        except ApiError as exc:
            if exc.status < 500:
                raise  # a refused key or an unknown run does not get better by asking again
            problem = str(exc)
        except httpx.TransportError as exc:
            if not connected:
                raise api.unreachable(exc) from None  # a wrong URL is said at once, not after retries
            problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if last_type in TERMINAL_EVENT_TYPES:
            return last_type
        delay = backoff.next_delay()
        if delay is None:
            raise CliError(
                f"gave up following run {run_id} after {backoff.limit} failed reconnects in a row "
                f"(last: {problem}); the same command starts again from the first event"
            )
        say(f"connection lost ({problem}); reconnecting in {delay:g}s, {backoff.failures} of {backoff.limit}")
        sleep(delay)


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(id, data) of each Server-Sent Event; comments (heartbeats) are skipped."""
    event_id, data = "", ""
    for line in lines:
        if not line:
            if data:
                try:
                    event = json.loads(data)
                except ValueError:
                    raise CliError(f"the stream sent an event that is not JSON: {data[:80]!r}") from None
                yield event_id, event
            event_id, data = "", ""
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()


def event_line(event: dict[str, Any]) -> str:
    """One human line per event. The timestamp key is accepted under both spellings while the stream's
    payload moves from camelCase `recordedAt` to `recorded_at`."""
    recorded = event.get("recorded_at", event.get("recordedAt", ""))
    version, kind = event.get("version", "?"), event.get("type", "?")
    return f"{recorded}  v{version!s:<3} {kind}  {json.dumps(event.get('data'))}"
