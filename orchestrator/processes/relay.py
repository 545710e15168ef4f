"""Outbox -> broker. At least once: a crash between publish and mark-sent publishes again, and the
worker's start check (only the next attempt may start) drops the duplicate."""

from __future__ import annotations

import threading
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
) -> int:
    """Publish one batch of due messages, fairly across tenants and within their running limits and the
    queues' caps, and mark them sent, with their runs' dispatch slots taken, in the claim's transaction."""
    with engine.begin() as conn:
        messages = claims.claim_fair(conn, limit, caps.tenant_max_running, caps.queue_max_in_flight)
        for message in messages:
            publish(message)
        outbox.mark_sent(conn, [m.id for m in messages])
        slots.hold(conn, [(m.run_id, m.tenant_id, m.kind, m.queue) for m in messages])
    if messages:
        log.debug("relay.published", count=len(messages))
    return len(messages)


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
            while publish_due(engine, publish, caps=caps):
                pass
            with engine.connect() as conn:
                due_in = outbox.seconds_until_next_due(conn)
            wait = poll_seconds if due_in is None else min(poll_seconds, max(due_in, 0.01))
            for _ in listen.notifies(timeout=wait, stop_after=1):
                pass
