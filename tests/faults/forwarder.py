"""TCP forwarders run by the test process: the machine's PostgreSQL and Redis listen on 127.0.0.1 only,
which a process in another network namespace cannot reach, so each simulated host gets listeners on its
veth's host-side address that relay byte for byte to the real servers.

One asyncio event loop on a daemon thread carries every connection (protocols, not stream coroutines:
they copy a chunk with no task switch, which matters when one test process relays the database traffic
of a dozen role processes). Connections are grouped by the address they were accepted on, so a test can
drop one host's connections alone, as a server would once it gave up on a partitioned peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
# The loop shares the test process's GIL with its HTTP client threads. At CPython's default switch
# interval (5 ms) each relayed chunk could wait that long for a busy thread to let go, and a run makes
# dozens of round trips to the database: the multi-host test took half as long again. While forwarders
# run, threads switch every 0.5 ms instead.
SWITCH_INTERVAL = 0.0005


class _Pipe(asyncio.Protocol):
    """One side of a relayed connection; writes what it reads to its peer's transport."""

    def __init__(self, group: set[asyncio.Transport]) -> None:
        self.group = group
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.group.add(transport)

    def data_received(self, data: bytes) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)

    def eof_received(self) -> bool:
        if self.peer is not None and self.peer.transport is not None and self.peer.transport.can_write_eof():
            self.peer.transport.write_eof()
        return True  # keep the other direction open until the peer closes too

    # Back-pressure: when our peer cannot write fast enough, we stop reading (and the other way round).
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.group.discard(self.transport)
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


class _Accepted(_Pipe):
    """The side a role connected to: holds its bytes back until the upstream connection is made."""

    def __init__(self, group: set[asyncio.Transport], target: tuple[str, int]) -> None:
        super().__init__(group)
        self.target = target

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        self.transport.pause_reading()
        asyncio.get_running_loop().create_task(self._connect_upstream())

    async def _connect_upstream(self) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        try:
            transport, upstream = await loop.create_connection(lambda: _Pipe(self.group), *self.target)
        except OSError:
            self.transport.abort()  # the server is down: the role sees a refused connection, as it would
            return
        if self.transport.is_closing():  # the role gave up (or was dropped) while we connected
            transport.close()
            return
        upstream.peer, self.peer = self, upstream
        self.transport.resume_reading()


class Forwarders:
    """Listeners on (address, any port) -> a target; `drop(address)` cuts every connection made there."""

    def __init__(self) -> None:
        self.switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tcp-forwarders", daemon=True)
        self.thread.start()
        self.servers: list[asyncio.Server] = []
        self.groups: dict[str, set[asyncio.Transport]] = {}

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def listen(self, address: str, target: tuple[str, int]) -> int:
        """Start forwarding connections to `address` (on a free port, which is returned) to `target`."""
        group = self.groups.setdefault(address, set())

        async def start() -> asyncio.Server:
            return await self.loop.create_server(lambda: _Accepted(group, target), address, 0)

        server = self._call(start())
        self.servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    def connections(self, address: str) -> int:
        """Open transports (both sides of each relayed connection) accepted on `address`."""

        async def count() -> int:
            return len(self.groups.get(address, ()))

        return self._call(count())

    def drop(self, address: str) -> int:
        """Abort every connection accepted on `address`, both sides; returns how many transports went.
        The listeners stay, so the host can connect again once it is reachable."""

        async def abort() -> int:
            group = self.groups.get(address, set())
            dropped = len(group)
            for transport in list(group):
                transport.abort()
            return dropped

        return self._call(abort())

    def close(self) -> None:
        async def shut() -> None:
            for server in self.servers:
                server.close()
            for group in self.groups.values():
                for transport in list(group):
                    transport.abort()

        with contextlib.suppress(Exception):
            self._call(shut())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()
        sys.setswitchinterval(self.switch_interval)
