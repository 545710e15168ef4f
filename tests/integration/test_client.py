"""`orchestrator.client` against the real API: an in-thread uvicorn over the session's database, with the
system's worker executing runs. Each behaviour is checked with the blocking client, and the async client
is held to the same answers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from orchestrator.client import (
    AsyncClient,
    BulkCancelRequest,
    Client,
    Conflict,
    NotFound,
    RateLimited,
    RunBatchItem,
    RunStatus,
    Unauthorized,
    ValidationFailed,
    WaitTimeout,
)
from orchestrator.projections import runner
from orchestrator.settings import Settings
from orchestrator.store.events import head_position
from tests.conftest import System
from tests.services import serving

pytestmark = pytest.mark.usefixtures("system")

ROOT = Path(__file__).resolve().parents[2]
Serve = Callable[..., AbstractContextManager[str]]


@pytest.fixture(scope="module")
def serve(settings: Settings, engine: Engine, system: System) -> Serve:
    """`serve(**settings)`: an API over real HTTP with these settings changed, for the `with` block."""

    @contextmanager
    def _serve(**changes: object) -> Iterator[str]:
        with serving(settings.model_copy(update=changes), engine) as served:
            yield served

    return _serve


@pytest.fixture(scope="module")
def url(serve: Serve) -> Iterator[str]:
    """Runs submitted here are executed by the system's worker."""
    with serve() as served:
        yield served


@pytest.fixture(scope="module")
def idle_url(serve: Serve) -> Iterator[str]:
    """Runs submitted here go to a queue no worker consumes: they stay pending."""
    with serve(queue_prefix=f"idle{uuid.uuid4().hex[:8]}") as served:
        yield served


def settle(engine: Engine) -> None:
    """Until the read models show every write so far: lists read them, and they trail the log."""
    with engine.connect() as conn:
        head = head_position(conn)
    assert all(runner.wait_for(engine, head, 20.0, p.name) for p in runner.PROJECTIONS), "projector is behind"


@pytest.fixture()
def key(make_key: Callable[[str], str], tenant: str) -> str:
    return make_key(tenant)


def test_list_pages_through_every_run_newest_first(idle_url: str, key: str, engine: Engine) -> None:
    with Client(idle_url, key) as client:
        submitted = [client.submit("sleep", labels={"n": str(n)}) for n in range(7)]
        assert all(run.status is RunStatus.PENDING for run in submitted)
        settle(engine)
        first = client.list_page(limit=3)
        assert len(first.data) == 3 and first.next_cursor is not None, "more than one page"
        listed = list(client.list(page_size=3))  # three pages: 3 + 3 + 1
        assert [run.id for run in listed] == [run.id for run in reversed(submitted)]
        assert [run.id for run in client.list(status="pending", page_size=2)] == [r.id for r in listed]
        assert list(client.list(status=RunStatus.SUCCEEDED)) == []


def test_the_same_idempotency_key_twice_answers_the_same_run(idle_url: str, key: str, engine: Engine) -> None:
    with Client(idle_url, key) as client:
        first = client.submit("sleep", {"duration": 1}, idempotency_key="nightly-1")
        again = client.submit("sleep", {"duration": 1}, idempotency_key="nightly-1")
        assert again.id == first.id
        settle(engine)
        assert [run.id for run in client.list()] == [first.id]
        with pytest.raises(Conflict) as clash:
            client.submit("sleep", {"duration": 2}, idempotency_key="nightly-1")
        assert clash.value.status == 409 and clash.value.error_code == "idempotency_conflict"


def test_a_batch_is_idempotent_item_by_item(idle_url: str, key: str) -> None:
    items = [RunBatchItem(kind="sleep", idempotency_key=f"b-{n}") for n in range(3)]
    with Client(idle_url, key) as client:
        first = client.submit_batch(items)
        assert first.created == [True] * 3
        again = client.submit_batch([*items, RunBatchItem(kind="sleep")])
        assert [r.id for r in again.data[:3]] == [r.id for r in first.data]
        assert again.created == [False, False, False, True]


def test_wait_returns_the_succeeded_run_and_times_out_on_one_that_does_not_end(
    url: str, idle_url: str, key: str
) -> None:
    with Client(url, key) as client:
        run = client.submit("sleep", {"duration": 0.2, "steps": 2})
        done = client.wait(run.id, timeout=30, poll_interval=0.2)
        assert done.status is RunStatus.SUCCEEDED and done.progress.done == 2
    with Client(idle_url, key) as client:
        stuck = client.submit("sleep")
        with pytest.raises(WaitTimeout) as timed_out:
            client.wait(stuck.id, timeout=0.5, poll_interval=0.1)
        assert timed_out.value.run.id == stuck.id and timed_out.value.run.status is RunStatus.PENDING
        assert client.cancel(stuck.id).status is RunStatus.CANCELED
        assert client.cancel(stuck.id).status is RunStatus.CANCELED, "a repeated cancel is not an error"
        assert client.wait(stuck.id, timeout=5).status is RunStatus.CANCELED


def test_a_stream_resumed_from_a_last_id_gets_only_the_later_events(url: str, key: str) -> None:
    with Client(url, key) as client:
        run = client.submit("sleep", {"duration": 0.3, "steps": 3})
        live = list(client.stream(run.id))  # from the start, live, until the terminal event
        assert live == client.events(run.id)
        assert live[0].type == "RunCreated" and live[-1].type == "RunSucceeded"
        middle = live[2]
        resumed = list(client.stream(run.id, last_event_id=middle.position))
        assert resumed == live[3:]
        assert list(client.stream(run.id, last_event_id=live[-1].position)) == []


class _BreaksAfterTheFirstFrame(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        seen = b""
        for chunk in self._inner:
            seen += chunk
            ends = [i + len(sep) for sep in (b"\r\n\r\n", b"\n\n") if (i := seen.find(sep)) >= 0]
            if ends:
                yield seen[: min(ends)]
                raise httpx.ReadError("connection dropped by the test")
        yield seen

    def close(self) -> None:
        self._inner.close()


class DropsTheFirstStream(httpx.BaseTransport):
    """Real HTTP, except that the first event stream breaks right after its first frame, as a dropped
    connection would; records the `Last-Event-ID` each stream request carried."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.resumed_from: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        if not request.url.path.endswith("/stream"):
            return response
        self.resumed_from.append(request.headers.get("last-event-id"))
        if len(self.resumed_from) > 1:
            return response
        assert isinstance(response.stream, httpx.SyncByteStream)
        broken = _BreaksAfterTheFirstFrame(response.stream)
        return httpx.Response(response.status_code, headers=response.headers, stream=broken, request=request)

    def close(self) -> None:
        self._inner.close()


def test_a_dropped_stream_is_resumed_from_the_last_event_with_no_gap_or_repeat(
    idle_url: str, key: str
) -> None:
    transport = DropsTheFirstStream()
    with Client(idle_url, key, transport=transport) as client:
        run = client.submit("sleep")
        seen = []
        for event in client.stream(run.id):
            seen.append(event)
            if event.type == "RunCreated":
                client.cancel(run.id)  # the stream breaks now, and the cancel's event comes after it
    assert [e.type for e in seen] == ["RunCreated", "RunCanceled"]
    assert transport.resumed_from == [None, str(seen[0].position)]


def test_error_answers_are_typed_with_status_and_detail(idle_url: str, key: str) -> None:
    with Client(idle_url, key) as client:
        with pytest.raises(NotFound) as missing:
            client.get(uuid.uuid4())
        assert missing.value.status == 404 and missing.value.detail == "run not found"
        with pytest.raises(NotFound):
            list(client.stream(uuid.uuid4()))
        with pytest.raises(ValidationFailed) as invalid:
            client.submit("sleep", {"duration": -1})
        assert invalid.value.status == 422
        assert any(error.loc[:2] == ["body", "params"] for error in invalid.value.errors), (
            invalid.value.errors
        )
        finished = client.submit("sleep")
        client.cancel(finished.id)
    with Client(idle_url, "orch_not_a_key") as stranger, pytest.raises(Unauthorized) as refused:
        stranger.list_page()
    assert refused.value.status == 401 and refused.value.error_code == "unauthenticated"


def test_a_succeeded_run_cannot_be_canceled(url: str, key: str) -> None:
    with Client(url, key) as client:
        run = client.wait(client.submit("sleep").id, timeout=30)
        with pytest.raises(Conflict) as refused:
            client.cancel(run.id)
        assert refused.value.status == 409


def test_cancel_many_and_retry(idle_url: str, key: str, engine: Engine) -> None:
    with Client(idle_url, key) as client:
        pending = [client.submit("sleep") for _ in range(3)]
        settle(engine)  # bulk cancel picks its runs from the list's read model
        canceled = client.cancel_many(BulkCancelRequest(kind="sleep", limit=2))
        assert (len(canceled.data), canceled.matched, canceled.more) == (2, 3, True)
        settle(engine)  # else a run canceled a moment ago may be picked again, as `already_canceled`
        rest = client.cancel_many()
        outcomes = {item.run_id: item.outcome for item in [*canceled.data, *rest.data]}
        assert outcomes == {run.id: "canceled" for run in pending} and not rest.more
        again = client.retry(pending[0].id, idempotency_key="again")
        assert again.retry_of == pending[0].id and again.status is RunStatus.PENDING
        assert client.retry(pending[0].id, idempotency_key="again").id == again.id
        with pytest.raises(Conflict):
            client.retry(again.id)  # pending: nothing to retry yet


def test_rate_limited_carries_retry_after(serve: Serve, key: str) -> None:
    with serve(rate_limit_per_second=0.01, rate_limit_burst=2) as limited, Client(limited, key) as client:
        client.list_page()
        client.list_page()
        with pytest.raises(RateLimited) as limited_error:
            client.list_page()
    assert limited_error.value.status == 429 and limited_error.value.retry_after >= 1


def test_the_async_client_gives_the_same_answers(url: str, idle_url: str, key: str, engine: Engine) -> None:
    async def scenario() -> None:
        async with AsyncClient(idle_url, key) as idle:
            submitted = [await idle.submit("sleep", idempotency_key=f"a-{n}") for n in range(5)]
            assert (await idle.submit("sleep", idempotency_key="a-0")).id == submitted[0].id
            await asyncio.to_thread(settle, engine)
            listed = [run async for run in idle.list(page_size=2)]
            assert [run.id for run in listed] == [run.id for run in reversed(submitted)]
            batch = await idle.submit_batch([RunBatchItem(kind="sleep", idempotency_key="a-1")])
            assert batch.created == [False] and batch.data[0].id == submitted[1].id
            with pytest.raises(WaitTimeout):
                await idle.wait(submitted[0].id, timeout=0.3, poll_interval=0.1)
            with pytest.raises(NotFound):
                await idle.get(uuid.uuid4())
            for run in submitted[1:]:
                assert (await idle.cancel(run.id)).status is RunStatus.CANCELED
            await asyncio.to_thread(settle, engine)
            bulk = await idle.cancel_many(BulkCancelRequest(kind="sleep"))
            assert [item.run_id for item in bulk.data] == [submitted[0].id]
            assert (await idle.retry(submitted[0].id)).retry_of == submitted[0].id
        async with AsyncClient(url, key) as client:
            run = await client.submit("sleep", {"duration": 0.2, "steps": 2})
            live = [event async for event in client.stream(run.id)]
            assert live[-1].type == "RunSucceeded"
            done = await client.wait(run.id, timeout=30)
            assert done.status is RunStatus.SUCCEEDED
            assert live == await client.events(run.id)
            resumed = [event async for event in client.stream(run.id, last_event_id=live[1].position)]
            assert resumed == live[2:]

    asyncio.run(scenario())


def test_the_readme_example_runs(url: str, key: str) -> None:
    env = {**os.environ, "ORCH_API_URL": url, "ORCH_API_KEY": key, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.client.quickstart"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("submitted ") and "RunSucceeded" in done.stdout
    assert "succeeded: 3/3 steps" in done.stdout, done.stdout
