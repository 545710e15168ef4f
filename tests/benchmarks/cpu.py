"""CPU time per process group from /proc, to say where a benchmark's time went: each role's process and
its children (a worker's pool), the PostgreSQL server's processes, redis-server. On a machine without
/proc (not Linux) every reading is empty and the benchmarks print no CPU table."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[str, int, float] | None:
    """(command name, parent pid, user + system seconds) of a live process."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    name, _, rest = text.partition(" (")[2].rpartition(") ")
    fields = rest.split()
    return name, int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS


def _processes() -> dict[int, tuple[str, int, float]]:
    found = {}
    for entry in PROC.glob("[0-9]*") if PROC.is_dir() else ():
        stat = _stat(int(entry.name))
        if stat is not None:
            found[int(entry.name)] = stat
    return found


def snapshot(
    roles: Mapping[str, int],
    alone: Mapping[str, int] | None = None,
    servers: Iterable[str] = ("postgres", "redis-server"),
) -> dict[str, float]:
    """CPU seconds so far of each role (its pid and every descendant), of each process in `alone` (itself
    only: the benchmark's own process, whose children are the roles), and of each server command (every
    process of that name: the PostgreSQL server's backends, writer and checkpointer)."""
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, (_, parent, _) in table.items():
        children.setdefault(parent, []).append(pid)

    def tree(pid: int) -> float:
        return table[pid][2] + sum(tree(child) for child in children.get(pid, [])) if pid in table else 0.0

    seconds = {role: tree(pid) for role, pid in roles.items()}
    for name, pid in (alone or {}).items():
        seconds[name] = table[pid][2] if pid in table else 0.0
    for server in servers:
        seconds[server] = sum(cpu for name, _, cpu in table.values() if name == server)
    return seconds


def per_run_ms(before: Mapping[str, float], after: Mapping[str, float], runs: int) -> dict[str, float]:
    """Milliseconds of CPU per run of each group between two snapshots."""
    return {name: 1000 * (after[name] - before.get(name, 0.0)) / runs for name in after}
