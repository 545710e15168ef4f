"""`Client`: the canonical API (/v1/runs) over a blocking httpx client."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import httpx

from orchestrator.client import protocol
from orchestrator.client.errors import WaitTimeout
from schemas.api import (
    BulkCancelRequest,
    BulkCancelResponse,
    EventList,
    EventView,
    RunBatchItem,
    RunBatchRequest,
    RunBatchResponse,
    RunPage,
    RunView,
)
from schemas.runs import RunStatus
from schemas.schedules import ScheduleCreateRequest, ScheduleList, ScheduleView


class Client:
    """One API key's view of the API. Use it as a context manager (or call `close`): it keeps a pool of
    connections. Error answers raise the exceptions of `orchestrator.client.errors`; transport failures
    raise httpx's own (`httpx.TransportError`)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = protocol.DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(**protocol.client_options(base_url, api_key, timeout), transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def submit(
        self,
        kind: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        parent_run_id: UUID | None = None,
        task: str | None = None,
        labels: Mapping[str, str] | None = None,
        priority: int = 0,
        not_before: datetime | None = None,
    ) -> RunView:
        """Submit a run. With an `idempotency_key`, a retry answers the run the first call created;
        `priority` (0-9, higher first) orders it among its tenant's waiting runs, and it is not dispatched
        before `not_before`."""
        body = protocol.submit_body(kind, params, parent_run_id, task, labels, priority, not_before)
        response = self._http.post(
            "/v1/runs", json=body, headers=protocol.idempotency_headers(idempotency_key)
        )
        return protocol.decoded(response, RunView)

    def submit_batch(self, runs: Sequence[RunBatchItem]) -> RunBatchResponse:
        """Submit up to 1,000 runs in one transaction (all or none); `created[i]` is false where item i's
        `idempotency_key` answered a run created before."""
        body = RunBatchRequest(runs=list(runs)).model_dump(mode="json", exclude_defaults=True)
        return protocol.decoded(self._http.post("/v1/runs:batch", json=body), RunBatchResponse)

    def get(self, run_id: UUID | str) -> RunView:
        return protocol.decoded(self._http.get(f"/v1/runs/{run_id}"), RunView)

    def events(self, run_id: UUID | str) -> list[EventView]:
        """The run's whole event log, in version order."""
        return protocol.decoded(self._http.get(f"/v1/runs/{run_id}/events"), EventList).data

    def cancel(self, run_id: UUID | str) -> RunView:
        """Cancel: a pending run ends at once, a running one is asked to stop. Asking again is not an
        error; a run that succeeded or failed raises `Conflict`."""
        return protocol.decoded(self._http.post(f"/v1/runs/{run_id}/cancel"), RunView)

    def cancel_many(self, filters: BulkCancelRequest | None = None) -> BulkCancelResponse:
        """Cancel up to `filters.limit` live runs matching the list filters (each with its children) and
        report each one's outcome; call again while the answer says `more`."""
        body = (filters or BulkCancelRequest()).model_dump(mode="json", exclude_defaults=True)
        return protocol.decoded(self._http.post("/v1/runs:cancel", json=body), BulkCancelResponse)

    def retry(self, run_id: UUID | str, *, idempotency_key: str | None = None) -> RunView:
        """A failed or canceled run again, as a new run whose `retry_of` names it; any other status raises
        `Conflict`."""
        headers = protocol.idempotency_headers(idempotency_key)
        return protocol.decoded(self._http.post(f"/v1/runs/{run_id}:retry", headers=headers), RunView)

    # ---- recurring schedules (/v1/schedules) ----------------------------------------------------------

    def create_schedule(self, schedule: ScheduleCreateRequest) -> ScheduleView:
        """A new schedule; its first run is due at the first slot after now (UTC)."""
        body = schedule.model_dump(mode="json", exclude_defaults=True)
        return protocol.decoded(self._http.post("/v1/schedules", json=body), ScheduleView)

    def schedules(self) -> list[ScheduleView]:
        """The tenant's schedules, newest first."""
        return protocol.decoded(self._http.get("/v1/schedules"), ScheduleList).data

    def get_schedule(self, schedule_id: UUID | str) -> ScheduleView:
        return protocol.decoded(self._http.get(f"/v1/schedules/{schedule_id}"), ScheduleView)

    def set_schedule_enabled(self, schedule_id: UUID | str, enabled: bool) -> ScheduleView:
        """Pause (False) or resume (True); a resumed schedule waits for its first slot after now."""
        response = self._http.patch(f"/v1/schedules/{schedule_id}", json={"enabled": enabled})
        return protocol.decoded(response, ScheduleView)

    def delete_schedule(self, schedule_id: UUID | str) -> None:
        """The schedule fires no more; the runs it fired stay."""
        protocol.raise_for_error(self._http.delete(f"/v1/schedules/{schedule_id}"))

    def list_page(
        self,
        *,
        status: RunStatus | str | None = None,
        kind: str | None = None,
        parent_id: UUID | None = None,
        root_only: bool = False,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """One page, newest first; pass its `next_cursor` back (with the same filters) for the next."""
        params = protocol.list_params(
            status, kind, parent_id, root_only, created_after, created_before, limit
        )
        if cursor is not None:
            params["cursor"] = cursor
        return protocol.decoded(self._http.get("/v1/runs", params=params), RunPage)

    def list(
        self,
        *,
        status: RunStatus | str | None = None,
        kind: str | None = None,
        parent_id: UUID | None = None,
        root_only: bool = False,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int = 100,
    ) -> Iterator[RunView]:
        """Every matching run, newest first, fetching the pages as the iteration reaches them."""
        cursor: str | None = None
        while True:
            page = self.list_page(
                status=status,
                kind=kind,
                parent_id=parent_id,
                root_only=root_only,
                created_after=created_after,
                created_before=created_before,
                limit=page_size,
                cursor=cursor,
            )
            yield from page.data
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def wait(self, run_id: UUID | str, timeout: float, *, poll_interval: float = 1.0) -> RunView:
        """The run once it is succeeded, failed or canceled; `WaitTimeout` (with the last state read)
        if that takes longer than `timeout` seconds. Polls, at most every `poll_interval` seconds."""
        deadline = time.monotonic() + timeout
        for delay in protocol.poll_delays(longest=poll_interval):
            run = self.get(run_id)
            if run.status in protocol.TERMINAL_STATUSES:
                return run
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(run, timeout)
            time.sleep(min(delay, left))
        raise AssertionError("unreachable")  # poll_delays never ends

    def stream(
        self,
        run_id: UUID | str,
        *,
        last_event_id: str | int | None = None,
        read_timeout: float = protocol.STREAM_READ_TIMEOUT,
        reconnects: int = protocol.STREAM_RECONNECTS,
    ) -> Iterator[EventView]:
        """The run's events after `last_event_id` (all of them without it), then live ones, ending after the
        terminal event. A dropped connection is resumed from the last event received (`Last-Event-ID`), so
        no event is missed or repeated; after `reconnects` failed attempts in a row the error is raised."""
        cursor = protocol.StreamCursor(None if last_event_id is None else str(last_event_id))
        timeout = httpx.Timeout(self._http.timeout.connect, read=read_timeout)
        failures = 0
        while not cursor.finished:
            received = False
            try:
                with self._http.stream(
                    "GET", f"/v1/runs/{run_id}/stream", headers=cursor.headers(), timeout=timeout
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        protocol.raise_for_error(response)
                    for line in response.iter_lines():
                        if (event := cursor.feed(line)) is not None:
                            received, failures = True, 0
                            yield event
            except httpx.TransportError:
                failures += 1
                if failures > reconnects:
                    raise
                time.sleep(min(0.1 * 2**failures, 2.0))
                continue
            if not received:
                return  # a clean end with nothing new: the run had already ended
