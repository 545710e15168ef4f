"""Run event streams (SSE) over real HTTP: an `orchestrator serve` process, the session's relay, projector and
worker, and an httpx client that drops and resumes. The server's fallback re-read is set far above the
latency bound, so live events arriving within it prove that NOTIFY pushed them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from orchestrator.api.sse import RunEventStream
from orchestrator.services import RunService, SubmitRequest
from orchestrator.settings import Settings
from orchestrator.store.events import RecordedEvent, read_stream
from tests.conftest import System
from tests.services import free_port, settings_env, sse_frames, wait_until

BASE = "/api/v1/data-products"
MAX_STREAMS = 22  # per-key cap stays at its default of 20, so both caps can be reached with 23 streams
STREAM_ENV = {
    "ORCH_SSE_HEARTBEAT_SECONDS": "0.3",
    "ORCH_SSE_FALLBACK_SECONDS": "30",
    "ORCH_SSE_MAX_STREAMS": str(MAX_STREAMS),
}


@pytest.fixture(scope="module")
def server(settings: Settings, system: System, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("serve") / "serve.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "serve", "--port", str(port)],
        env={**settings_env(settings), **STREAM_ENV},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        return False

    try:
        wait_until(healthy, timeout=20, message="the API server")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture()
def http(server: str, make_key: Callable[[str], str], tenant: str) -> Iterator[httpx.Client]:
    headers = {"X-API-Key": make_key(tenant)}
    timeout = httpx.Timeout(10.0, read=5.0)
    with httpx.Client(base_url=server, headers=headers, timeout=timeout) as client:
        yield client


@pytest.fixture(scope="module")
def idle_service(engine: Engine, settings: Settings) -> RunService:
    """Submits to a queue no worker consumes: its runs stay pending, so their streams stay open."""
    return RunService(engine, settings.model_copy(update={"queue_prefix": f"idle{uuid.uuid4().hex[:8]}"}))


def sse_messages(response: httpx.Response) -> Iterator[dict[str, str]]:
    return sse_frames(response.iter_lines())


def positions(engine: Engine, run_id: str, tenant: str) -> list[int]:
    with engine.connect() as conn:
        return [e.position for e in read_stream(conn, uuid.UUID(run_id), tenant_id=tenant)]


def test_history_live_drop_and_resume_deliver_each_event_once(
    http: httpx.Client, engine: Engine, tenant: str
) -> None:
    created = http.post(f"{BASE}/runs", json={"taskName": "sleep", "context": {"duration": 3, "steps": 6}})
    assert created.status_code == 200, created.text
    run_id = created.json()["id"]
    wait_until(lambda: len(positions(engine, run_id, tenant)) >= 2, timeout=15, message="the run to start")
    history = set(positions(engine, run_id, tenant))
    received: list[int] = []
    latencies: list[float] = []

    with http.stream("GET", f"{BASE}/runs/{run_id}/events") as first:
        assert first.status_code == 200 and first.headers["content-type"].startswith("text/event-stream")
        for message in sse_messages(first):
            if "id" not in message:
                continue
            payload = json.loads(message["data"])
            assert payload["position"] == int(message["id"]) and payload["type"] == message["event"]
            assert set(payload) == {"position", "version", "type", "data", "recorded_at"}
            received.append(payload["position"])
            if payload["position"] not in history:
                recorded = datetime.fromisoformat(payload["recorded_at"])
                latencies.append(datetime.now(UTC).timestamp() - recorded.timestamp())
            if len(latencies) == 2:
                break  # drop the connection mid-run
    assert set(received) >= history and len(latencies) == 2
    time.sleep(0.8)  # events keep committing while nobody listens

    resumed = {"Last-Event-ID": str(received[-1])}
    with http.stream("GET", f"{BASE}/runs/{run_id}/events", headers=resumed) as second:
        frames = [m for m in sse_messages(second) if "id" in m]  # returns only because the server ends it
    received += [int(m["id"]) for m in frames]

    assert frames[-1]["event"] == "RunSucceeded"
    assert received == positions(engine, run_id, tenant)  # every event, once, in order
    assert max(latencies) < 1.0, latencies


def test_canonical_stream_replays_a_finished_run_and_ignores_foreign_ids(
    http: httpx.Client, engine: Engine, tenant: str, idle_service: RunService
) -> None:
    run = http.post("/v1/runs", json={"kind": "sleep", "params": {"duration": 0}}).json()
    wait_until(
        lambda: http.get(f"/v1/runs/{run['id']}").json()["status"] == "succeeded",
        timeout=15,
        message="success",
    )
    own = positions(engine, run["id"], tenant)
    elsewhere = idle_service.submit(SubmitRequest(tenant_id=f"x-{uuid.uuid4().hex[:6]}", kind="sleep"))
    for last_event_id in (None, str(elsewhere.position), "garbage", "-5", str(10**30)):
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        with http.stream("GET", f"/v1/runs/{run['id']}/stream", headers=headers) as response:
            ids = [int(m["id"]) for m in sse_messages(response) if "id" in m]
        assert ids == own, last_event_id  # 0 foreign events: the whole own log instead
    with http.stream("GET", f"/v1/runs/{run['id']}/stream", headers={"Last-Event-ID": str(own[-1])}) as done:
        assert [m for m in sse_messages(done) if "id" in m] == []  # nothing after the terminal event: closes
    foreign = http.get(f"/v1/runs/{elsewhere.run_id}/stream")
    missing = http.get(f"{BASE}/runs/{uuid.uuid4()}/events")
    assert foreign.status_code == missing.status_code == 404 and foreign.content == missing.content


def test_heartbeats_and_stream_caps(
    server: str, http: httpx.Client, idle_service: RunService, make_key: Callable[[str], str], tenant: str
) -> None:
    pending = idle_service.submit(SubmitRequest(tenant_id=tenant, kind="sleep")).run_id
    path = f"{BASE}/runs/{pending}/events"
    with contextlib.ExitStack() as streams:
        opened = []
        for _ in range(20):
            response = streams.enter_context(http.stream("GET", path))
            assert response.status_code == 200
            opened.append(sse_messages(response))
            first = next(m for m in opened[-1] if "id" in m)
            assert first["event"] == "RunCreated"  # history first; then it waits for live events
        over_key = http.get(path)
        assert over_key.status_code == 429 and over_key.json()["error_code"] == "too_many_streams"
        second_key = {"X-API-Key": make_key(tenant)}
        for _ in range(MAX_STREAMS - 20):
            assert streams.enter_context(http.stream("GET", path, headers=second_key)).status_code == 200
        over_all = http.get(path, headers={"X-API-Key": make_key(tenant)})
        assert over_all.status_code == 503 and over_all.json()["error_code"] == "service_unavailable"
    # Dropped streams give their slots back.
    wait_until(lambda: _opens(http, path), timeout=5, message="a slot after disconnects")
    with http.stream("GET", path) as response:
        messages = sse_messages(response)
        assert next(messages)["event"] == "RunCreated"
        started = time.monotonic()
        assert "comment" in next(messages) and "comment" in next(messages)
        assert time.monotonic() - started < 1.5  # two heartbeats of 0.3 s while nothing happens
    http.post(f"{BASE}/runs/{pending}/cancel")


def _opens(http: httpx.Client, path: str) -> bool:
    with http.stream("GET", path) as response:
        return response.status_code == 200


def _event(position: int, event_type: str = "ProgressReported") -> RecordedEvent:
    return RecordedEvent(
        position, uuid.uuid4(), uuid.uuid4(), position, "t", event_type, {}, {}, datetime.now(UTC)
    )


def _reader(log: list[RecordedEvent]) -> Callable[[int, int], Any]:
    async def read(after: int, limit: int) -> list[RecordedEvent]:
        return [e for e in log if e.position > after][:limit]

    return read


def test_a_client_that_stops_reading_is_cut_off_at_the_buffer_bound() -> None:
    log = [_event(p) for p in range(1, 100)]
    settings = Settings(sse_buffer_events=5, sse_stall_seconds=0.2, sse_fallback_seconds=0.05)

    async def scenario() -> tuple[list[int], bool]:
        stream = RunEventStream(_reader(log), asyncio.Event(), 0, settings)
        events = stream.events()
        got = [(await anext(events)).position]
        await asyncio.sleep(0.5)  # stops reading while 98 more wait
        got += [e.position async for e in events]
        return got, stream.cut_off

    got, cut_off = asyncio.run(scenario())
    assert cut_off and got == list(range(1, len(got) + 1)) and len(got) <= 1 + settings.sse_buffer_events


def test_a_slow_reader_gets_everything_through_a_small_buffer_then_the_end() -> None:
    log = [_event(p) for p in range(1, 40)] + [_event(40, "RunSucceeded")]
    settings = Settings(
        sse_buffer_events=3, sse_stall_seconds=1.0, sse_fallback_seconds=0.05, sse_read_batch=2
    )

    async def scenario() -> list[int]:
        got = []
        async for event in RunEventStream(_reader(log), asyncio.Event(), 7, settings).events():
            got.append(event.position)
            await asyncio.sleep(0.002)
        return got

    assert asyncio.run(scenario()) == list(range(8, 41))
