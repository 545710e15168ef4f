"""Which due dispatches the relay publishes next: round robin across tenants, limits, priorities. Pure.

A tenant with 10,000 queued runs and one with a single run each get a turn in every round, so the single
run leaves in the first batch. Within a tenant, higher priority first, then the longest waiting. A run over
its tenant's limit (all kinds, or its kind) is skipped, not refused: it stays queued until a slot frees.
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
    candidates: Iterable[Candidate], running: Mapping[tuple[str, str], int], limits: Limits, batch: int
) -> list[Candidate]:
    """Up to `batch` candidates in publishing order: one per tenant per round, tenants in the order their
    oldest due row has waited. `running` counts held slots per (tenant, kind)."""
    by_tenant: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        by_tenant.setdefault(candidate.tenant_id, []).append(candidate)
    queues = {tenant: deque(sorted(rows, key=lambda c: c.order)) for tenant, rows in by_tenant.items()}
    turns = deque(sorted(queues, key=lambda t: min((c.not_before, c.id) for c in queues[t])))
    held: Counter[tuple[str, str]] = Counter()
    for (tenant, kind), count in running.items():
        _count(held, tenant, kind, count)
    chosen: list[Candidate] = []
    while turns and len(chosen) < batch:
        tenant = turns.popleft()
        queue = queues[tenant]
        while queue:
            candidate = queue.popleft()
            if candidate.holds_slot:
                chosen.append(candidate)
                break
            if _has_room(held, limits, tenant, candidate.kind):
                _count(held, tenant, candidate.kind, 1)
                chosen.append(candidate)
                break
            # Over a limit: counts only grow within one choice, so it stays over; skip it for this batch.
        if queue:
            turns.append(tenant)
    return chosen


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
