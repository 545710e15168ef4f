"""Rate limits and the per-key stream cap hold across API replicas: two apps on the same settings share one
budget through Redis; with Redis unreachable each falls back to its own per-process count (fail open)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from orchestrator.api.app import create_app
from orchestrator.api.shared_limits import SharedRedis, SharedStreamSlots, namespace_of
from orchestrator.services import RunService, SubmitRequest
from orchestrator.settings import Settings
from tests.services import free_port, serving, wait_until

Serve = Callable[[Settings], AbstractContextManager[str]]


def _own(settings: Settings, **changes: object) -> Settings:
    """The session's settings under a queue prefix of their own: a Redis namespace no other test uses."""
    return settings.model_copy(update={"queue_prefix": f"lim{uuid.uuid4().hex[:8]}", **changes})


def _statuses(clients: list[TestClient], auth: dict[str, str], requests: int) -> list[int]:
    """`requests` list calls, alternating between the replicas."""
    return [
        clients[i % len(clients)].get("/v1/runs?limit=1", headers=auth).status_code for i in range(requests)
    ]


def test_two_replicas_share_one_rate_limit(settings: Settings, engine: Engine, auth: dict[str, str]) -> None:
    shared = _own(settings, rate_limit_per_second=0.01, rate_limit_burst=5)
    with TestClient(create_app(shared, engine)) as one, TestClient(create_app(shared, engine)) as two:
        statuses = _statuses([one, two], auth, 10)
        # Per process, each would have let 5 through (all 10); shared, the key's 5 tokens are all there is.
        assert statuses == [200] * 5 + [429] * 5
        refused = two.get("/v1/runs?limit=1", headers=auth)
        assert refused.json()["error_code"] == "rate_limited" and int(refused.headers["retry-after"]) >= 1


def test_without_redis_each_replica_limits_on_its_own(
    settings: Settings, engine: Engine, auth: dict[str, str]
) -> None:
    """Fail open to the per-process limit: nothing is refused for want of Redis, and each replica still
    counts its own budget."""
    dead = _own(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0", rate_limit_per_second=0.01)
    dead = dead.model_copy(update={"rate_limit_burst": 3})
    with TestClient(create_app(dead, engine)) as one, TestClient(create_app(dead, engine)) as two:
        attempts = [_count_redis_calls(one), _count_redis_calls(two)]
        assert _statuses([one, two], auth, 8) == [200] * 6 + [429] * 2
        # Counted, not timed: an outage costs a replica one failed call and then a pause of
        # RETRY_SECONDS (at most one more call, should the requests take that long), not one per request.
        assert all(1 <= len(calls) <= 2 for calls in attempts), attempts


def _count_redis_calls(client: TestClient) -> list[float]:
    """The moments the replica's token script is sent to Redis, from now on."""
    shared: SharedRedis = client.app.state.shared_limits  # type: ignore[attr-defined]
    calls: list[float] = []
    script = shared._take_token

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(time.monotonic())
        return script(*args, **kwargs)

    shared._take_token = counted  # type: ignore[assignment]
    return calls


@pytest.fixture(scope="module")
def serve(engine: Engine) -> Serve:
    @contextmanager
    def _serve(settings: Settings) -> Iterator[str]:
        with serving(settings, engine) as url:
            yield url

    return _serve


def test_the_stream_cap_of_a_key_holds_across_replicas(
    settings: Settings, service: RunService, serve: Serve, auth: dict[str, str], tenant: str
) -> None:
    capped = _own(settings, sse_per_key_streams=1)
    idle = RunService(
        service.engine, capped
    )  # its queue has no worker: the run stays pending, its stream open
    run_id = idle.submit(SubmitRequest(tenant_id=tenant, kind="sleep", params={"duration": 30})).run_id
    path = f"/v1/runs/{run_id}/stream"
    with ExitStack() as stack:
        one, two = stack.enter_context(serve(capped)), stack.enter_context(serve(capped))
        http = stack.enter_context(httpx.Client(headers=auth, timeout=10))
        with http.stream("GET", one + path) as first:
            assert first.status_code == 200
            lines = first.iter_lines()  # kept: a dropped line iterator closes the response
            assert next(lines).startswith("id: ")  # the stream is open and serving
            over = http.get(two + path)
            assert over.status_code == 429 and over.json()["error_code"] == "too_many_streams"
        # Closed on one replica, the slot is free on the other.
        wait_until(lambda: _opens(http, two + path), timeout=5, message="the slot back on the other replica")
    idle.cancel(tenant, run_id)


def test_without_redis_each_replica_caps_the_key_on_its_own(
    settings: Settings, service: RunService, serve: Serve, auth: dict[str, str], tenant: str
) -> None:
    dead = _own(settings, sse_per_key_streams=1, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    idle = RunService(service.engine, _own(settings))
    run_id = idle.submit(SubmitRequest(tenant_id=tenant, kind="sleep", params={"duration": 30})).run_id
    path = f"/v1/runs/{run_id}/stream"
    with ExitStack() as stack:
        one, two = stack.enter_context(serve(dead)), stack.enter_context(serve(dead))
        http = stack.enter_context(httpx.Client(headers=auth, timeout=10))
        lines = []
        for url in (one, two):  # one stream on each: neither can see the other's
            response = stack.enter_context(http.stream("GET", url + path))
            assert response.status_code == 200
            lines.append(response.iter_lines())  # kept: a dropped line iterator closes the response
            assert next(lines[-1]).startswith("id: ")
        over = http.get(one + path)
        assert over.status_code == 429 and over.json()["error_code"] == "too_many_streams"
    idle.cancel(tenant, run_id)


def _opens(http: httpx.Client, url: str) -> bool:
    with http.stream("GET", url) as response:
        return response.status_code == 200


def test_the_slots_of_a_replica_that_died_expire(settings: Settings) -> None:
    own = _own(settings)
    shared = SharedRedis(own.redis_url or "", namespace_of(own))
    try:
        # A lease its dead holder stopped renewing a moment ago: it no longer counts against the cap.
        client = redis.Redis.from_url(own.redis_url or "")
        client.zadd(shared.key("sse", "k"), {"dead:1": time.time() - 1})
        release = SharedStreamSlots(shared).take("k", cap=1)
        assert release is not None
        assert client.zcard(shared.key("sse", "k")) == 1
        release()
        assert client.zcard(shared.key("sse", "k")) == 0
        client.close()
    finally:
        shared.close()
