"""The append-only event store: one stream per run, a global commit-ordered position.

Every function takes a Connection inside the caller's transaction, so an append commits together with
whatever else the caller writes (outbox rows, leases, idempotency keys).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from orchestrator.metrics.process import APPEND_SECONDS
from orchestrator.store.schema import events
from schemas.events import Event, RunCreated, event_from_stored, event_to_stored

# Channel that wakes projectors, SSE streams and anything else tailing the log, notified by a trigger on
# every insert (migration 0006). The payload is only a hint ("stream_id:position"); readers always read
# the log itself.
EVENTS_CHANNEL = "orch_events"

# Key of the advisory lock that keeps whole-log readers from skipping a late commit. Positions come from
# an identity column, assigned at INSERT but visible at COMMIT: two concurrent appenders can commit 11
# before 10, and a reader that had already passed 11 would never see 10. Every append holds this lock in
# SHARED mode from its INSERT to its COMMIT, so appenders never wait for each other (and their commits
# share WAL flushes); a whole-log reader first asks `orch_committed_head()` (migration 0005), which takes
# the lock EXCLUSIVELY for an instant: every append then in flight has ended, so every position up to the
# head it reads is final, and `read_all` reads no further than that. Readers of one stream need none of
# this: an append to a stream waits for the stream's previous version to be committed (it read it).
APPEND_LOCK_KEY = 0x6F7263685F617070  # "orch_app"
_VERSION_CONSTRAINT = "events_stream_version_key"


class ConcurrencyError(Exception):
    """The stream's version was not the one the caller expected."""

    def __init__(self, stream_id: UUID, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream_id}: expected version {expected}, found {actual}")
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True)
class RecordedEvent:
    position: int
    event_id: UUID
    stream_id: UUID
    version: int
    tenant_id: str
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime

    def to_event(self) -> Event:
        return event_from_stored(self.type, self.data)


_COLUMNS = (
    events.c.position,
    events.c.event_id,
    events.c.stream_id,
    events.c.version,
    events.c.tenant_id,
    events.c.type,
    events.c.data,
    events.c.metadata,
    events.c.recorded_at,
)

# The hot path's statements, built once: SQLAlchemy builds a statement and computes its cache key on every
# call otherwise, which cost about 60 us a statement, a third of executing it (several per run and role).
_INSERT = events.insert().returning(*_COLUMNS)
_SHARED_LOCK_AND_VERSION = sa.select(
    sa.func.pg_advisory_xact_lock_shared(APPEND_LOCK_KEY),
    sa.select(sa.func.coalesce(sa.func.max(events.c.version), 0))
    .where(events.c.stream_id == sa.bindparam("stream_id"))
    .scalar_subquery(),
)
_SHARED_LOCK = sa.select(sa.func.pg_advisory_xact_lock_shared(APPEND_LOCK_KEY))
_STREAM = (
    sa.select(*_COLUMNS).where(events.c.stream_id == sa.bindparam("stream_id")).order_by(events.c.version)
)
_TENANT_STREAM = _STREAM.where(events.c.tenant_id == sa.bindparam("tenant_id"))
_STREAM_FROM_VERSION = _STREAM.where(events.c.version >= sa.bindparam("version"))
_LOG_RANGE = (
    sa.select(*_COLUMNS)
    .where(events.c.position > sa.bindparam("after"), events.c.position <= sa.bindparam("head"))
    .order_by(events.c.position)
    .limit(sa.bindparam("limit", type_=sa.Integer))
)
# The log's highest position (0 when empty), as an expression a caller may compare within its own statement.
HEAD = sa.func.coalesce(sa.select(sa.func.max(events.c.position)).scalar_subquery(), 0)
_HEAD = sa.select(HEAD)
_COMMITTED_HEAD = sa.select(sa.func.orch_committed_head())
_STREAM_LOCK = sa.select(sa.func.pg_advisory_xact_lock(sa.bindparam("key", type_=sa.BigInteger)))


def _recorded(row: Any) -> RecordedEvent:
    # The selected columns (_COLUMNS) are the dataclass's fields in order (checked below): positional
    # arguments skip building a mapping per row, which whole-log readers do thousands of times a second.
    return RecordedEvent(*row)


if tuple(c.name for c in _COLUMNS) != tuple(f.name for f in fields(RecordedEvent)):  # pragma: no cover
    raise RuntimeError("_COLUMNS must list RecordedEvent's fields in order")


def append(
    conn: Connection,
    stream_id: UUID,
    tenant_id: str,
    new_events: Sequence[Event],
    expected_version: int,
    metadata: dict[str, Any] | None = None,
) -> list[RecordedEvent]:
    """Append events at `expected_version + 1...`, or raise ConcurrencyError. Commit is the caller's."""
    if not new_events:
        return []
    with APPEND_SECONDS.labels("append").time():
        return _append(conn, stream_id, tenant_id, new_events, expected_version, metadata)


def _append(
    conn: Connection,
    stream_id: UUID,
    tenant_id: str,
    new_events: Sequence[Event],
    expected_version: int,
    metadata: dict[str, Any] | None,
) -> list[RecordedEvent]:
    # One round trip: the shared lock, and the stream's version as this transaction sees it. A concurrent
    # append of the same version that is not committed yet is invisible here; the unique key catches it.
    actual = conn.execute(_SHARED_LOCK_AND_VERSION, {"stream_id": stream_id}).one()[1]
    if actual != expected_version:
        raise ConcurrencyError(stream_id, expected_version, int(actual))
    rows = [
        {
            "event_id": uuid.uuid4(),
            "stream_id": stream_id,
            "version": expected_version + offset + 1,
            "tenant_id": tenant_id,
            "type": event.type,
            "data": event_to_stored(event),
            "metadata": metadata or {},
        }
        for offset, event in enumerate(new_events)
    ]
    try:
        inserted = conn.execute(_INSERT, rows)
    except IntegrityError as exc:
        # Optimistic concurrency is the (stream_id, version) key: the version we meant to write exists
        # (committed, or committed by the writer we waited for). The transaction is spoiled: start over.
        if _VERSION_CONSTRAINT not in str(exc.orig):
            raise
        raise ConcurrencyError(stream_id, expected_version, -1) from None
    recorded = [_recorded(r) for r in inserted]
    recorded.sort(key=lambda r: r.version)
    return recorded  # the insert's trigger (migration 0006) sends the NOTIFY


@dataclass(frozen=True)
class NewStream:
    stream_id: UUID
    tenant_id: str
    events: Sequence[Event]
    metadata: dict[str, Any]


def append_new_streams(conn: Connection, streams: Sequence[NewStream]) -> list[list[RecordedEvent]]:
    """Start many streams in one statement (a batch of submissions): each at version 1, as `append` with
    expected version 0 would. The ids are fresh, so there is no version to check; the unique key would
    still reject a stream that existed. Commit is the caller's; the shared lock is taken as `append` does."""
    if not streams:
        return []
    with APPEND_SECONDS.labels("append_new_streams").time():
        return _append_new_streams(conn, streams)


def _append_new_streams(conn: Connection, streams: Sequence[NewStream]) -> list[list[RecordedEvent]]:
    conn.execute(_SHARED_LOCK)
    rows = [
        {
            "event_id": uuid.uuid4(),
            "stream_id": stream.stream_id,
            "version": offset + 1,
            "tenant_id": stream.tenant_id,
            "type": event.type,
            "data": event_to_stored(event),
            "metadata": stream.metadata,
        }
        for stream in streams
        for offset, event in enumerate(stream.events)
    ]
    by_stream: dict[UUID, list[RecordedEvent]] = {stream.stream_id: [] for stream in streams}
    for row in conn.execute(_INSERT, rows):
        recorded = _recorded(row)
        by_stream[recorded.stream_id].append(recorded)
    return [sorted(by_stream[stream.stream_id], key=lambda r: r.version) for stream in streams]


def read_streams(
    conn: Connection, stream_ids: Sequence[UUID], tenant_id: str
) -> dict[UUID, list[RecordedEvent]]:
    """Several streams of one tenant in one query, each in version order."""
    query = (
        sa.select(*_COLUMNS)
        .where(events.c.stream_id.in_(stream_ids), events.c.tenant_id == tenant_id)
        .order_by(events.c.stream_id, events.c.version)
    )
    found: dict[UUID, list[RecordedEvent]] = {stream_id: [] for stream_id in stream_ids}
    for row in conn.execute(query):
        recorded = _recorded(row)
        found[recorded.stream_id].append(recorded)
    return found


_STREAM_LOCK_NAMESPACE = 0x7374726D  # "strm": apart from the other advisory locks' keys


def lock_stream(conn: Connection, stream_id: UUID) -> None:
    """Take the stream's write lock until the transaction ends: writers of one stream take turns instead of
    racing on the version (a fast job's appends kept beating a cancel that had to re-read a long stream).
    The expected-version check of `append` stays the guarantee; this only stops the losing."""
    key = int.from_bytes(stream_id.bytes[8:], "big", signed=True) ^ _STREAM_LOCK_NAMESPACE
    conn.execute(_STREAM_LOCK, {"key": key})


def read_stream(conn: Connection, stream_id: UUID, *, tenant_id: str | None = None) -> list[RecordedEvent]:
    if tenant_id is None:
        return [_recorded(r) for r in conn.execute(_STREAM, {"stream_id": stream_id})]
    return [
        _recorded(r) for r in conn.execute(_TENANT_STREAM, {"stream_id": stream_id, "tenant_id": tenant_id})
    ]


def read_stream_from_version(conn: Connection, stream_id: UUID, version: int) -> list[RecordedEvent]:
    """A stream's events from `version` (inclusive) on: the tail past a state folded up to `version`."""
    return [
        _recorded(r) for r in conn.execute(_STREAM_FROM_VERSION, {"stream_id": stream_id, "version": version})
    ]


def read_run_stream(conn: Connection, run_id: UUID, *, tenant_id: str | None = None) -> list[RecordedEvent]:
    """A run's stream, or [] when the id names no run: nothing, or another kind of stream sharing the log
    (a recurring schedule's), which no run route may take for a run."""
    stream = read_stream(conn, run_id, tenant_id=tenant_id)
    return stream if stream and stream[0].type == RunCreated.type else []


def read_stream_after(
    conn: Connection, stream_id: UUID, tenant_id: str, after: int, limit: int = 500
) -> list[RecordedEvent]:
    """A stream's events past a global position, for live tails that resume by position."""
    query = (
        sa.select(*_COLUMNS)
        .where(events.c.stream_id == stream_id, events.c.tenant_id == tenant_id, events.c.position > after)
        .order_by(events.c.position)
        .limit(limit)
    )
    return [_recorded(r) for r in conn.execute(query)]


def has_event(conn: Connection, stream_id: UUID, event_type: str) -> bool:
    query = sa.select(sa.literal(1)).where(events.c.stream_id == stream_id, events.c.type == event_type)
    return conn.execute(query.limit(1)).first() is not None


def committed_head(conn: Connection) -> int:
    """The position up to which the log is final (see APPEND_LOCK_KEY). Needs READ COMMITTED."""
    return int(conn.execute(_COMMITTED_HEAD).scalar_one())


def read_all(
    conn: Connection, after: int = 0, limit: int = 1000, upto: int | None = None
) -> list[RecordedEvent]:
    """Events past `after` in position order, never past the committed head: safe to checkpoint by position.
    `upto` is a head the caller already has from `committed_head` (one barrier for many batches); without it
    the head is asked for here. The connection must be in READ COMMITTED (each statement's snapshot then
    sees what the head covers)."""
    head = committed_head(conn) if upto is None else upto
    if head <= after:
        return []
    return [_recorded(r) for r in conn.execute(_LOG_RANGE, {"after": after, "head": head, "limit": limit})]


def head_position(conn: Connection) -> int:
    return int(conn.execute(_HEAD).scalar_one())
