"""The API keys this process has seen, by digest, so that a request on a known key needs no lookup of its
own: on a busy key that lookup was a pool checkout and a round trip on every request.

Serving a revoked key from here is safe: each transaction a request begins checks, in the statement that
scopes it to its tenants (`orchestrator.store.tenancy`), that its key is still active, and refuses it
otherwise. Entries also expire, so a revoked key leaves the cache and is then refused at the door.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from orchestrator.store.keys import KeyRecord

DEFAULT_SIZE = 10_000
DEFAULT_TTL_SECONDS = 60.0


class KeyCache:
    """A bounded LRU of active key records with a time to live; safe to share between threads."""

    def __init__(self, size: int = DEFAULT_SIZE, ttl_seconds: float = DEFAULT_TTL_SECONDS) -> None:
        self._size, self._ttl = size, ttl_seconds
        self._entries: OrderedDict[str, tuple[float, KeyRecord]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str) -> KeyRecord | None:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if entry[0] <= now:
                del self._entries[digest]
                return None
            self._entries.move_to_end(digest)
            return entry[1]

    def put(self, digest: str, record: KeyRecord) -> None:
        with self._lock:
            self._entries[digest] = (time.monotonic() + self._ttl, record)
            self._entries.move_to_end(digest)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
