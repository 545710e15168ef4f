"""Outbox -> broker. At least once: a crash between publish and mark-sent publishes again, and the
worker's start check (only the next attempt may start) drops the duplicate."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg
import structlog
from sqlalchemy.engine import Engine

from orchestrator.store import claims, outbox, slots
from orchestrator.store.engine import libpq_url

log = structlog.get_logger(__name__)

Publisher = Callable[[outbox.OutboxMessage], None]


def publish_due(
    engine: Engine, publish: Publisher, limit: int = 100, default_max_running: int | None = None
) -> int:
    """Publish one batch of due messages, fairly across tenants and within their running limits, and mark
    them sent, with their runs' dispatch slots taken, in the same transaction as the claim."""
    with engine.begin() as conn:
        messages = claims.claim_fair(conn, limit, default_max_running)
        for message in messages:
            publish(message)
        outbox.mark_sent(conn, [m.id for m in messages])
        slots.hold(conn, [(m.run_id, m.tenant_id, m.kind) for m in messages])
    if messages:
        log.debug("relay.published", count=len(messages))
    return len(messages)


def run_relay(
    engine: Engine,
    database_url: str,
    publish: Publisher,
    poll_seconds: float,
    stop: threading.Event,
    default_max_running: int | None = None,
) -> None:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as listen:
        listen.execute(f"LISTEN {outbox.OUTBOX_CHANNEL}")
        log.info("relay.active")
        while not stop.is_set():
            while publish_due(engine, publish, default_max_running=default_max_running):
                pass
            with engine.connect() as conn:
                due_in = outbox.seconds_until_next_due(conn)
            wait = poll_seconds if due_in is None else min(poll_seconds, max(due_in, 0.01))
            for _ in listen.notifies(timeout=wait, stop_after=1):
                pass
