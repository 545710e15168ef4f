"""Budgets every API replica shares, counted in the broker's Redis: the per-key request rate (a token bucket)
and the per-key open SSE streams (a set of leases).

Redis answers with its own clock (`TIME` inside the scripts), so replicas with skewed clocks still share
one bucket. Each check is one script call, atomic in Redis, so two replicas cannot both take the last token
or the last stream slot.

When Redis cannot be reached the limits fail open to the per-process counts: each replica then limits on
its own, as before these were shared (so the budget is at most one per replica), and the API keeps
answering from PostgreSQL instead of refusing every request over a broker outage. After a failure Redis is
left alone for `RETRY_SECONDS`, so an outage costs one timeout, not one per request.

Stream slots are leases (`LEASE_SECONDS`), renewed by the process holding them while the stream is open:
the slots of a replica that died without releasing them expire instead of leaking.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import redis
import structlog

from orchestrator.settings import Settings

log = structlog.get_logger(__name__)

T = TypeVar("T")

TIMEOUT_SECONDS = 0.25
RETRY_SECONDS = 5.0
LEASE_SECONDS = 30.0

# KEYS[1] the bucket; ARGV rate per second, burst. Returns the seconds to wait (0: allowed), as a string
# (Lua numbers come back from Redis as integers).
_TAKE_TOKEN = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(state[1]) or burst
local stamp = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return tostring(wait)
"""

# KEYS[1] the key's stream leases (a sorted set scored by expiry); ARGV member, cap, lease seconds.
# Returns 1 when the slot was taken, 0 when the key is at its cap.
_TAKE_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])) * 2)
return 1
"""

# KEYS the sets to renew in; ARGV lease seconds, then one member per key. Renews only members still there.
_RENEW_SLOTS = """
local t = redis.call('TIME')
local expires = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', expires, ARGV[i + 1])
  redis.call('EXPIRE', key, math.ceil(tonumber(ARGV[1])) * 2)
end
return #KEYS
"""


def redis_client(url: str, timeout: float = 2.0) -> redis.Redis[bytes]:
    """Celery's `redis+socket://path` form is `unix://path` for redis-py."""
    if url.startswith("redis+socket://"):
        url = "unix://" + url[len("redis+socket://") :]
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


class SharedRedis:
    """The Redis these budgets live in, with a breaker: a call returns None while Redis is unreachable."""

    def __init__(self, url: str, namespace: str) -> None:
        self.namespace = namespace
        self._client = redis_client(url, TIMEOUT_SECONDS)
        self._take_token = self._client.register_script(_TAKE_TOKEN)
        self._take_slot = self._client.register_script(_TAKE_SLOT)
        self._renew = self._client.register_script(_RENEW_SLOTS)
        self._down_until = 0.0

    def key(self, *parts: str) -> str:
        return ":".join((self.namespace, *parts))

    def call(self, what: Callable[[], T]) -> T | None:
        if time.monotonic() < self._down_until:
            return None
        try:
            return what()
        except redis.RedisError as exc:
            self._down_until = time.monotonic() + RETRY_SECONDS
            log.warning("limits.redis_unavailable", error_type=type(exc).__name__, fallback="per_process")
            return None

    def take_token(self, key: str, rate: float, burst: int) -> float | None:
        answer = self.call(lambda: self._take_token(keys=[key], args=[rate, burst]))
        return None if answer is None else float(answer)

    def take_slot(self, key: str, member: str, cap: int) -> bool | None:
        answer = self.call(lambda: self._take_slot(keys=[key], args=[member, cap, LEASE_SECONDS]))
        return None if answer is None else bool(answer)

    def drop_slot(self, key: str, member: str) -> None:
        self.call(lambda: self._client.zrem(key, member))

    def renew_slots(self, held: list[tuple[str, str]]) -> None:
        if held:
            keys, members = [k for k, _ in held], [m for _, m in held]
            self.call(lambda: self._renew(keys=keys, args=[LEASE_SECONDS, *members]))

    def close(self) -> None:
        self._client.close()


class SharedStreamSlots:
    """The per-key stream cap across replicas: each open stream holds a lease in its key's set."""

    def __init__(self, shared: SharedRedis) -> None:
        self._shared = shared
        self._held: dict[str, str] = {}  # member -> its set
        self._lock = threading.Lock()
        self._process = uuid.uuid4().hex[:12]

    def take(self, key: str, cap: int) -> Callable[[], None] | None:
        """A release when the slot was taken; raises `AtCap` at the cap; None when Redis is unreachable."""
        name, member = self._shared.key("sse", key), f"{self._process}:{uuid.uuid4().hex}"
        taken = self._shared.take_slot(name, member, cap)
        if taken is None:
            return None
        if not taken:
            raise AtCap()
        with self._lock:
            self._held[member] = name

        def release() -> None:
            with self._lock:
                held = self._held.pop(member, None)
            if held is not None:
                self._shared.drop_slot(held, member)

        return release

    def renew(self) -> None:
        """Extend the leases of this process's open streams (called every third of a lease)."""
        with self._lock:
            held = [(name, member) for member, name in self._held.items()]
        self._shared.renew_slots(held)


class AtCap(Exception):
    """The key holds as many open streams as its cap allows, across every replica."""


def namespace_of(settings: Settings) -> str:
    """Keys under the queue prefix, so two systems sharing one Redis keep separate budgets."""
    return f"{settings.queue_prefix}:limits"
