"""The API's key cache: least recently used first out, and nothing served past its time to live."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from orchestrator.api import key_cache
from orchestrator.api.key_cache import KeyCache
from orchestrator.store.keys import KeyRecord


def _record(tenant: str) -> KeyRecord:
    return KeyRecord(uuid.uuid4(), tenant, "orch_abcdef", None, datetime.now(UTC), None)


def test_the_least_recently_used_key_leaves_first() -> None:
    cache = KeyCache(size=2)
    a, b, c = _record("a"), _record("b"), _record("c")
    cache.put("a", a)
    cache.put("b", b)
    assert cache.get("a") == a  # now b is the least recently used
    cache.put("c", c)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (a, None, c)
    assert len(cache) == 2


def test_an_entry_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(key_cache.time, "monotonic", lambda: now[0])
    cache = KeyCache(ttl_seconds=60.0)
    record = _record("a")
    cache.put("a", record)
    now[0] += 59.9
    assert cache.get("a") == record
    now[0] += 0.2
    assert cache.get("a") is None and len(cache) == 0
