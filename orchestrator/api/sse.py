"""Server-Sent Events for one run's log: pushed, resumable, exactly once, bounded.

The log is the only source. NOTIFY (sent at the commit of every append) only wakes a stream; the stream then
reads its run's events by global position past the last one it delivered, so a lost, late or duplicated
notification can cost latency but never an event, and nothing is sent twice: appends commit in position
order (see `orchestrator.store.events.APPEND_LOCK_KEY`), so `position > last delivered` skips nothing. A
fallback timer re-reads in case a notification was missed (listener reconnecting). Every SSE `id` is the
event's global position, so a client resumes with `Last-Event-ID` and the log is read again from there.

One LISTEN connection per API process (`StreamHub`) fans wake-ups out by stream id. Each connection has a
bounded buffer: a client that stops reading is cut off once the buffer is full, rather than holding events
in memory without limit. Streams are capped per API key across every replica (429, counted in Redis:
orchestrator.api.shared_limits) and per process (503).

This module is the streaming core; `orchestrator.api.stream` turns it into HTTP responses for any surface.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from uuid import UUID

import psycopg
import sqlalchemy as sa
import structlog
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.engine import Engine
from sse_starlette import ServerSentEvent

from orchestrator.api.shared_limits import LEASE_SECONDS, AtCap, SharedStreamSlots
from orchestrator.settings import Settings
from orchestrator.store import tenancy
from orchestrator.store.engine import libpq_url
from orchestrator.store.events import EVENTS_CHANNEL, RecordedEvent, read_stream_after
from orchestrator.store.schema import events
from schemas.api import EventView
from schemas.events import TERMINAL_EVENT_TYPES, RunCreated

log = structlog.get_logger(__name__)

Reader = Callable[[int, int], Awaitable[list[RecordedEvent]]]


class StreamLimitReached(Exception):
    def __init__(self, status: int, detail: str, code: str) -> None:
        super().__init__(detail)
        self.status, self.body = status, {"detail": detail, "error_code": code}


class StreamSlots:
    """Open-stream counters: per API process for the process cap (503), and per key for the key's cap (429),
    which `shared` (when given) counts across every replica in Redis. While Redis is unreachable the key's
    cap falls back to this process's count (see orchestrator.api.shared_limits). Taken from worker threads
    (the shared count is a Redis round trip), hence the lock."""

    def __init__(self, shared: SharedStreamSlots | None = None) -> None:
        self._by_key: Counter[str] = Counter()
        self._total = 0
        self._shared = shared
        self._lock = threading.Lock()

    @property
    def open(self) -> int:
        """Streams open in this process now (the `orch_sse_streams_active` gauge)."""
        return self._total

    def renew(self) -> None:
        """Keep this process's shared slots alive while their streams are open."""
        if self._shared is not None:
            self._shared.renew()

    def acquire(self, key: str, settings: Settings) -> Callable[[], None]:
        """Take a slot or raise; the returned release may be called any number of times."""
        with self._lock:
            if self._total >= settings.sse_max_streams:
                raise StreamLimitReached(503, "too many open streams, retry shortly", "service_unavailable")
            self._total += 1  # held while the shared count is asked, so the process cap cannot overshoot
        try:
            shared_release = self._take_for_key(key, settings.sse_per_key_streams)
        except BaseException:
            with self._lock:
                self._total -= 1
            raise
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                self._total -= 1
                self._by_key[key] -= 1
                if self._by_key[key] <= 0:
                    del self._by_key[key]
            if shared_release is not None:
                shared_release()

        return release

    def _take_for_key(self, key: str, cap: int) -> Callable[[], None] | None:
        """The key's slot: from the shared count, or from this process's while Redis is unreachable."""
        shared_release = None
        if self._shared is not None:
            try:
                shared_release = self._shared.take(key, cap)
            except AtCap:
                raise StreamLimitReached(429, TOO_MANY_FOR_KEY, "too_many_streams") from None
        with self._lock:
            if shared_release is None and self._by_key[key] >= cap:
                raise StreamLimitReached(429, TOO_MANY_FOR_KEY, "too_many_streams")
            self._by_key[key] += 1
        return shared_release


TOO_MANY_FOR_KEY = "too many open streams for this API key"


class StreamHub:
    """The process's one LISTEN connection, waking the streams subscribed to the notified run."""

    def __init__(self, database_url: str, retry_seconds: float) -> None:
        self._url = libpq_url(database_url)
        self._retry_seconds = retry_seconds
        self._subscribers: dict[UUID, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None

    @contextmanager
    def subscribe(self, stream_id: UUID) -> Iterator[asyncio.Event]:
        wake = asyncio.Event()
        self._subscribers.setdefault(stream_id, set()).add(wake)
        try:
            yield wake
        finally:
            subscribers = self._subscribers.get(stream_id, set())
            subscribers.discard(wake)
            if not subscribers:
                self._subscribers.pop(stream_id, None)

    def start(self) -> None:
        """Listen in the background: the API starts (and answers /healthz) even while the database is down."""
        self._task = asyncio.get_running_loop().create_task(self._listen())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _listen(self) -> None:
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    # Whatever committed while nobody listened: every stream re-reads its run.
                    self._wake_all()
                    async for note in conn.notifies():
                        self._wake(note.payload)
            except (psycopg.Error, OSError) as exc:
                log.warning("sse.listener_down", error_type=type(exc).__name__)
            await asyncio.sleep(self._retry_seconds)

    def _wake(self, payload: str) -> None:
        try:
            stream_id = UUID(payload.partition(":")[0])
        except ValueError:
            return
        for wake in self._subscribers.get(stream_id, ()):
            wake.set()

    def _wake_all(self) -> None:
        for subscribers in self._subscribers.values():
            for wake in subscribers:
                wake.set()


class RunEventStream:
    """One client's tail of one run: a producer reads the log into a bounded queue, the client drains it.

    The stream ends after the run's terminal event, or early (`cut_off`) when the client leaves a full
    buffer undrained for `sse_stall_seconds` while more events wait. Ending early loses nothing: what was
    never delivered is dropped whole, and the client resumes from the last id it received.
    """

    def __init__(self, read: Reader, wake: asyncio.Event, after: int, settings: Settings) -> None:
        self._read, self._wake, self._after, self._settings = read, wake, after, settings
        self.cut_off = False

    async def events(self) -> AsyncIterator[RecordedEvent]:
        queue: asyncio.Queue[RecordedEvent | None] = asyncio.Queue(self._settings.sse_buffer_events)
        producer = asyncio.create_task(self._produce(queue))
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            producer.cancel()

    async def _produce(self, queue: asyncio.Queue[RecordedEvent | None]) -> None:
        try:
            await self._follow(queue)
        except Exception as exc:  # the client reconnects and resumes; the log is still there
            log.warning("sse.read_failed", error_type=type(exc).__name__)
        if self.cut_off or not await self._offer(queue, None):
            self.cut_off = True
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(None)

    async def _follow(self, queue: asyncio.Queue[RecordedEvent | None]) -> None:
        after = self._after
        while True:
            # Clear before reading: a NOTIFY that arrives during the read sets it again, so it is not lost.
            self._wake.clear()
            # With the buffer full, read one event: if there is one, more than `sse_buffer_events` wait.
            wanted = min(max(1, queue.maxsize - queue.qsize()), self._settings.sse_read_batch)
            batch = await self._read(after, wanted)
            for event in batch:
                if not await self._offer(queue, event):
                    self.cut_off = True
                    log.info("sse.client_cut_off", stream_id=str(event.stream_id), buffered=queue.qsize())
                    return
                after = event.position
                if event.type in TERMINAL_EVENT_TYPES:
                    return
            if len(batch) < wanted:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.sse_fallback_seconds)

    async def _offer(self, queue: asyncio.Queue[RecordedEvent | None], item: RecordedEvent | None) -> bool:
        try:
            await asyncio.wait_for(queue.put(item), self._settings.sse_stall_seconds)
        except TimeoutError:
            return False
        return True


@dataclass(frozen=True)
class ResumePoint:
    after: int
    finished: bool


def parse_last_event_id(value: str | None) -> int:
    """A position, or 0 (the whole stream) for anything that is not one."""
    value = (value or "").strip()
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else 0


def resume_point(engine: Engine, tenant_id: str, run_id: UUID, last_event_id: int) -> ResumePoint | None:
    """Where to start, or None when the tenant has no such run.

    Only the run's own events are consulted: a Last-Event-ID from another run or tenant is not one of them,
    so the stream restarts from 0 instead of skipping any of this run's events.
    """
    query = sa.select(events.c.version, events.c.position, events.c.type).where(
        events.c.stream_id == run_id,
        events.c.tenant_id == tenant_id,
        sa.or_(
            events.c.version == 1,
            events.c.position == last_event_id,
            events.c.type.in_(sorted(TERMINAL_EVENT_TYPES)),
        ),
    )
    with engine.connect() as conn:
        rows = list(conn.execute(query))
    if not any(r.version == 1 and r.type == RunCreated.type for r in rows):
        return None  # no such run (a schedule's stream shares the log but is no run)
    after = last_event_id if any(r.position == last_event_id for r in rows) else 0
    finished = any(r.type in TERMINAL_EVENT_TYPES and r.position <= after for r in rows)
    return ResumePoint(after=after, finished=finished)


def read_events(engine: Engine, run_id: UUID, tenant_id: str, after: int, limit: int) -> list[RecordedEvent]:
    with engine.connect() as conn:
        return read_stream_after(conn, run_id, tenant_id, after, limit)


_ReadKey = tuple[UUID, str, int, int]  # run, tenant, after, limit


@dataclass
class _PendingRead:
    task: asyncio.Future[list[RecordedEvent]] | None = None


class SharedReads:
    """Reads of a run's log shared by the streams that ask for the same events before the read begins.

    One NOTIFY wakes every stream following the run, and each would fetch the same rows: under load their
    reads queue for a thread together, so N clients of one run cost N reads per wake-up. A request joins a
    read only while that read is still waiting to begin. A read that has begun may hold a snapshot older
    than the commit that woke the joining stream; its answer could lack that event and leave the stream
    waiting for the fallback timer. So joining never delays an event, and nothing else changes: each stream
    keeps its own position, buffer and cut-off. The events returned are shared between the streams: they
    are frozen, and nothing downstream mutates their payloads."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._waiting: dict[_ReadKey, _PendingRead] = {}
        self._lock = threading.Lock()  # the dict is emptied from the worker thread that runs the read
        self.reads = 0  # database reads made (the tests count them)

    async def read(self, run_id: UUID, tenant_id: str, after: int, limit: int) -> list[RecordedEvent]:
        key = (run_id, tenant_id, after, limit)
        with self._lock:
            pending = self._waiting.get(key)
            if pending is None:
                pending = self._waiting[key] = _PendingRead()
                pending.task = asyncio.ensure_future(run_in_threadpool(self._read, key, pending))
                # A read whose streams all left ends unawaited: its error is not worth a warning.
                pending.task.add_done_callback(lambda t: t.cancelled() or t.exception())
        assert pending.task is not None
        # Shielded: one stream leaving must not cancel the read the others wait on.
        return await asyncio.shield(pending.task)

    def _read(self, key: _ReadKey, pending: _PendingRead) -> list[RecordedEvent]:
        with self._lock:
            if self._waiting.get(key) is pending:
                del self._waiting[key]  # begun: later requests start a read of their own
            self.reads += 1
        tenancy.without_key_check()  # this read may serve other keys' streams of the run too
        return read_events(self._engine, *key)


def to_sse(event: RecordedEvent) -> ServerSentEvent:
    """The event as `GET /v1/runs/{id}/events` lists it (one `EventView`, one serializer), so a client
    reads the same JSON from the stream and from the list."""
    view = EventView.model_validate(event)
    return ServerSentEvent(view.model_dump_json(), id=str(event.position), event=event.type)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Starts the process's listener and the renewal of its shared stream slots; streams take their
    settings (`app.state.settings`, the ones given to `create_app`) and slots from `app.state`."""
    settings: Settings = app.state.settings
    shared = app.state.shared_limits
    slots = StreamSlots(SharedStreamSlots(shared) if shared is not None else None)
    app.state.stream_slots = slots
    app.state.stream_reads = SharedReads(app.state.engine)
    app.state.stream_hub = hub = StreamHub(settings.database_url or "", settings.sse_fallback_seconds)
    hub.start()
    renewing = asyncio.get_running_loop().create_task(_renew_slots(slots))
    try:
        yield
    finally:
        renewing.cancel()
        await asyncio.gather(renewing, return_exceptions=True)
        await hub.stop()
        if shared is not None:
            shared.close()


async def _renew_slots(slots: StreamSlots) -> None:
    while True:
        await asyncio.sleep(LEASE_SECONDS / 3)
        await asyncio.to_thread(slots.renew)
