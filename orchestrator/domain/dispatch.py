"""Which due dispatches the relay publishes next: round robin across tenants, limits, priorities. Pure.

A tenant with 10,000 queued runs and one with a single run each get a turn in every round, so the single
run leaves in the first batch. Rounds start with the tenant holding the fewest slots (then the one that has
waited longest): when a queue's cap leaves room for one run at a time, the tenant with runs in flight does
not win every turn. Within a tenant, higher priority first, then the longest waiting. A run over its
tenant's limit (all kinds, or its kind) or its queue's cap is skipped, not refused: it stays queued until a
slot frees.

The queue cap is what makes dispatch fair with no limit set: the broker's queue is first in, first out, so
a run published behind 10,000 others waits for all of them whatever order the relay chose. Holding each
queue's runs in flight to a few times the workers' slots keeps the backlog here, where turns are fair.
A dispatch whose run already holds a slot (a re-dispatch of an attempt the broker may have lost) needs no
new one, or a tenant at its limit could never recover its own lost message.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

ALL_KINDS = ""  # the limit key of a tenant's whole running count


@dataclass(frozen=True)
class Candidate:
    """One due outbox row, as the relay sees it before choosing."""

    id: int
    tenant_id: str
    kind: str
    priority: int
    not_before: datetime
    holds_slot: bool = False
    queue: str = ""

    @property
    def order(self) -> tuple[int, datetime, int]:
        return (-self.priority, self.not_before, self.id)


@dataclass(frozen=True)
class Limits:
    """Running limits in force: (tenant, kind) -> max running, kind ALL_KINDS for the tenant's total.
    A missing key, or 0, is unlimited."""

    max_running: Mapping[tuple[str, str], int]

    def of(self, tenant_id: str, kind: str) -> int | None:
        value = self.max_running.get((tenant_id, kind), 0)
        return value or None


def effective_limits(
    tenants: Iterable[str], overrides: Mapping[tuple[str, str], int], default_max_running: int | None
) -> Limits:
    """The limits of `tenants`: their own rows, and the default total where they set no total."""
    limits = dict(overrides)
    for tenant in tenants:
        if default_max_running and (tenant, ALL_KINDS) not in limits:
            limits[(tenant, ALL_KINDS)] = default_max_running
    return Limits(limits)


def choose(
    candidates: Iterable[Candidate],
    running: Mapping[tuple[str, str], int],
    limits: Limits,
    batch: int,
    queue_room: Mapping[str, int] | None = None,
) -> list[Candidate]:
    """Up to `batch` candidates in publishing order: one per tenant per round, tenants by fewest held
    slots, then by how long their oldest due row has waited. `running` counts held slots per
    (tenant, kind); `queue_room` is how many more runs each queue may have in flight (a queue not in it
    has no cap)."""
    by_tenant: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        by_tenant.setdefault(candidate.tenant_id, []).append(candidate)
    pending = {tenant: deque(sorted(rows, key=lambda c: c.order)) for tenant, rows in by_tenant.items()}
    held: Counter[tuple[str, str]] = Counter()
    for (tenant, kind), count in running.items():
        _count(held, tenant, kind, count)
    turns = deque(
        sorted(
            pending,
            key=lambda t: (held[(t, ALL_KINDS)], min((c.not_before, c.id) for c in pending[t])),
        )
    )
    room = Counter(queue_room or {})
    capped = set(room)
    chosen: list[Candidate] = []
    while turns and len(chosen) < batch:
        tenant = turns.popleft()
        queue = pending[tenant]
        while queue:
            candidate = queue.popleft()
            if candidate.holds_slot:
                chosen.append(candidate)
                break
            if candidate.queue in capped and room[candidate.queue] <= 0:
                continue  # its queue is full: rooms only shrink within one choice
            if _has_room(held, limits, tenant, candidate.kind):
                _count(held, tenant, candidate.kind, 1)
                room[candidate.queue] -= 1
                chosen.append(candidate)
                break
            # Over a limit: counts only grow within one choice, so it stays over; skip it for this batch.
        if queue:
            turns.append(tenant)
    return chosen


def queue_room(
    in_flight: Mapping[str, int], queues: Iterable[str], max_in_flight: int | None
) -> dict[str, int]:
    """How many more runs each of `queues` may have in flight under a cap of `max_in_flight` each (None or
    0: no cap, an empty map)."""
    if not max_in_flight:
        return {}
    return {queue: max(0, max_in_flight - in_flight.get(queue, 0)) for queue in queues}


def _count(held: Counter[tuple[str, str]], tenant: str, kind: str, count: int) -> None:
    held[(tenant, ALL_KINDS)] += count
    if kind != ALL_KINDS:  # a row from before kinds were recorded counts toward the total only
        held[(tenant, kind)] += count


def _has_room(held: Counter[tuple[str, str]], limits: Limits, tenant: str, kind: str) -> bool:
    for key in ((tenant, ALL_KINDS), (tenant, kind)):
        limit = limits.of(*key)
        if limit is not None and held[key] >= limit:
            return False
    return True
