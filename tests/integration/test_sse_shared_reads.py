"""Streams of one run share the log read that a wake-up sends them all to, and never join one that began
before the commit that woke them."""

from __future__ import annotations

import asyncio
import threading
from uuid import UUID

import pytest
from sqlalchemy.engine import Engine

from orchestrator.api import sse
from orchestrator.domain.commands import ReportProgress
from orchestrator.services import RunService, SubmitRequest
from orchestrator.store.events import RecordedEvent


def started_run(service: RunService, tenant: str) -> UUID:
    run_id = service.submit(SubmitRequest(tenant_id=tenant, kind="sleep")).run_id
    assert service.start_attempt(run_id, 1, "test") is not None
    return run_id


def test_streams_asking_together_share_one_read(service: RunService, engine: Engine, tenant: str) -> None:
    run_id = started_run(service, tenant)
    reads = sse.SharedReads(engine)

    async def ten_streams() -> list[list[RecordedEvent]]:
        return await asyncio.gather(*(reads.read(run_id, tenant, 0, 500) for _ in range(10)))

    answers = asyncio.run(ten_streams())
    assert reads.reads == 1
    assert all(answer == answers[0] for answer in answers)
    assert [e.type for e in answers[0]][:2] == ["RunCreated", "RunStarted"]
    # Another position is another read.
    asyncio.run(reads.read(run_id, tenant, answers[0][0].position, 500))
    assert reads.reads == 2


def test_a_read_that_began_is_not_joined(
    service: RunService, engine: Engine, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first read is held after it began; an event commits; a stream asking now must see that event,
    so it reads for itself instead of waiting on the held read."""
    run_id = started_run(service, tenant)
    began, release = threading.Event(), threading.Event()
    real = sse.read_events
    calls = 0

    def held_first(*args: object) -> list[RecordedEvent]:
        nonlocal calls
        calls += 1
        if calls == 1:
            began.set()
            assert release.wait(10)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(sse, "read_events", held_first)
    reads = sse.SharedReads(engine)

    async def scenario() -> tuple[list[RecordedEvent], list[RecordedEvent]]:
        first = asyncio.ensure_future(reads.read(run_id, tenant, 0, 500))
        assert await asyncio.to_thread(began.wait, 10)
        await asyncio.to_thread(service.execute, run_id, ReportProgress(attempt=1, done=1, total=2))
        second = await reads.read(run_id, tenant, 0, 500)
        release.set()
        return await first, second

    _, second = asyncio.run(scenario())
    assert reads.reads == 2
    assert "ProgressReported" in [e.type for e in second]


def test_a_stream_leaving_does_not_cancel_the_read_others_wait_on(
    service: RunService, engine: Engine, tenant: str
) -> None:
    run_id = started_run(service, tenant)
    reads = sse.SharedReads(engine)

    async def scenario() -> list[RecordedEvent]:
        leaving = asyncio.ensure_future(reads.read(run_id, tenant, 0, 500))
        staying = asyncio.ensure_future(reads.read(run_id, tenant, 0, 500))
        await asyncio.sleep(0)  # both have asked
        leaving.cancel()
        return await staying

    assert [e.type for e in asyncio.run(scenario())][:1] == ["RunCreated"]
    assert reads.reads == 1
