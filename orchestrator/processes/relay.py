"""Outbox -> broker. At least once: a crash between publish and mark-sent publishes again, and the
worker's start check (only the next attempt may start) drops the duplicate."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import structlog
from sqlalchemy.engine import Engine

from orchestrator.settings import Settings
from orchestrator.store import claims, outbox, slots
from orchestrator.store.engine import libpq_url

log = structlog.get_logger(__name__)

Publisher = Callable[[outbox.OutboxMessage], None]

_MIN_ROUND_SECONDS = 0.02  # at most 50 claim rounds a second
_HELD_BACK_ROUND_SECONDS = 0.1  # at most 10 while due runs wait on a limit or a queue's cap


@dataclass(frozen=True)
class DispatchCaps:
    """The settings the relay's choice obeys: a tenant's default running limit, each queue's cap on runs
    in flight (None: none)."""

    tenant_max_running: int | None = None
    queue_max_in_flight: int | None = None

    @classmethod
    def of(cls, settings: Settings) -> DispatchCaps:
        return cls(settings.tenant_max_running, settings.queue_max_in_flight)


def publish_due(
    engine: Engine, publish: Publisher, limit: int = 100, caps: DispatchCaps = DispatchCaps()
) -> claims.Claim:
    """Publish one batch of due messages, fairly across tenants and within their running limits and the
    queues' caps, and mark them sent, with their runs' dispatch slots taken, in the claim's transaction."""
    with engine.begin() as conn:
        claim = claims.claim_fair(conn, limit, caps.tenant_max_running, caps.queue_max_in_flight)
        for message in claim.messages:
            publish(message)
        outbox.mark_sent(conn, [m.id for m in claim.messages])
        slots.hold(conn, [(m.run_id, m.tenant_id, m.kind, m.queue) for m in claim.messages])
    if claim.messages:
        log.debug("relay.published", count=len(claim.messages), held_back=claim.held_back)
    return claim


def run_relay(
    engine: Engine,
    database_url: str,
    publish: Publisher,
    poll_seconds: float,
    stop: threading.Event,
    caps: DispatchCaps = DispatchCaps(),
) -> None:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as listen:
        listen.execute(f"LISTEN {outbox.OUTBOX_CHANNEL}")
        log.info("relay.active")
        while not stop.is_set():
            started = time.monotonic()
            # Claim again while a claim publishes and nothing waits on a limit. Once something does, a claim
            # made at once would read the same candidates to publish the one slot freed meanwhile.
            while (claim := publish_due(engine, publish, caps=caps)).messages and not claim.held_back:
                pass
            with engine.connect() as conn:
                due_in = outbox.seconds_until_next_due(conn)
            wait = poll_seconds if due_in is None else min(poll_seconds, max(due_in, 0.01))
            for _ in listen.notifies(timeout=wait, stop_after=1):
                pass
            # Every submit and every freed slot notifies. Under load, a round per notification claimed one
            # run at a time, and with a queue at its cap each round read a batch of candidates to publish
            # one: let the wake-ups of a few milliseconds gather into one round, and of longer while runs
            # wait on a cap (the queue still holds all but the few that finished meanwhile, so the workers
            # do not run dry).
            pause = _HELD_BACK_ROUND_SECONDS if claim.held_back else _MIN_ROUND_SECONDS
            stop.wait(max(0.0, pause - (time.monotonic() - started)))
