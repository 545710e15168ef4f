"""Simulated hosts on one machine: a network namespace each, joined to the test's namespace by a veth
pair on a /30 of its own. A role started under `Host.prefix` sees only its veth (and its own loopback),
so it reaches the database and the broker only through the test's forwarders on `Host.gateway`, and a
test can partition it by bringing the veth down.

Every name carries a random suffix, so two runs on one machine (or a run after a crash that left
namespaces behind) never collide; Linux caps interface names at 15 characters, which the names here
stay well under.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shutil
import subprocess
import uuid
from dataclasses import dataclass


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)


def _must(*args: str) -> None:
    done = _ip(*args)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")


def netns_unavailable() -> str | None:
    """Why namespaces cannot be made here (a skip reason), or None when they can."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root (CAP_NET_ADMIN)"
    probe = f"orchprobe{uuid.uuid4().hex[:6]}"
    added = _ip("netns", "add", probe)
    if added.returncode != 0:
        return f"`ip netns add` is not permitted here: {added.stderr.strip()}"
    _ip("netns", "del", probe)
    return None


@dataclass(frozen=True)
class Host:
    name: str
    netns: str
    veth: str  # the test-side end; bringing it down partitions the host
    gateway: str  # the test-side address: where this host's forwarders listen
    address: str  # the host's own address, inside its namespace

    @property
    def prefix(self) -> list[str]:
        """The command that runs a program on this host (`ip netns exec` execs it: the pid stays)."""
        return ["ip", "netns", "exec", self.netns]


class Network:
    """Hosts made by `add`, all removed by `remove` (also after a failed test: call it in a finalizer)."""

    def __init__(self) -> None:
        self.suffix = uuid.uuid4().hex[:4]
        self.subnet = self._free_subnet()
        self.hosts: list[Host] = []

    @staticmethod
    def _free_subnet() -> ipaddress.IPv4Network:
        """A 10.x.0.0/16 no route of this machine touches, one /30 of it per host."""
        text = _ip("-4", "route", "show", "table", "all").stdout + _ip("-4", "-o", "addr").stdout
        used = []
        for word in text.split():
            with contextlib.suppress(ValueError):  # most words are not addresses
                used.append(ipaddress.ip_network(word, strict=False))
        for second in random.sample(range(64, 250), 20):
            candidate = ipaddress.IPv4Network(f"10.{second}.0.0/16")
            if not any(candidate.overlaps(network) for network in used):
                return candidate
        raise RuntimeError("no free 10.x.0.0/16 for the test hosts")

    def add(self, name: str) -> Host:
        index = len(self.hosts)
        pair = list(self.subnet.subnets(new_prefix=30))[index]
        gateway, address = (str(a) for a in list(pair.hosts())[:2])
        host = Host(name, f"orch{self.suffix}-{name}", f"or{self.suffix}h{index}", gateway, address)
        self.hosts.append(host)  # before creating anything, so that remove() finds what was half made
        inside = f"or{self.suffix}n{index}"
        _must("netns", "add", host.netns)
        _must("link", "add", host.veth, "type", "veth", "peer", "name", inside)
        _must("link", "set", inside, "netns", host.netns)
        _must("addr", "add", f"{gateway}/30", "dev", host.veth)
        _must("link", "set", host.veth, "up")
        _must("-n", host.netns, "addr", "add", f"{address}/30", "dev", inside)
        _must("-n", host.netns, "link", "set", inside, "up")
        _must("-n", host.netns, "link", "set", "lo", "up")
        return host

    def cut(self, host: Host) -> None:
        """Partition the host: its packets go nowhere (no reset, no error: a cable pulled)."""
        _must("link", "set", host.veth, "down")

    def heal(self, host: Host) -> None:
        _must("link", "set", host.veth, "up")

    def remove(self) -> None:
        """Delete every namespace and veth made here. A namespace lingers while a process runs in it,
        its veth with it; deleting the test-side end removes the pair at once either way."""
        for host in self.hosts:
            with contextlib.suppress(subprocess.SubprocessError):
                _ip("link", "del", host.veth)
                _ip("netns", "del", host.netns)
        self.hosts.clear()
