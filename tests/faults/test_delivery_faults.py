"""The broker is a hint: relays die mid-publish, messages arrive three times, Redis is killed or
flushed; every run still executes once per attempt and ends exactly once (T4, T10 of the notes)."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable

import sqlalchemy as sa

from orchestrator.store.schema import outbox
from tests.faults.harness import FaultSystem, RedisServer, check_invariant, scale
from tests.services import exceeds, wait_until

MakeSystem = Callable[..., FaultSystem]


def _executions(system: FaultSystem, run_ids: list[uuid.UUID]) -> int:
    return sum(system.event_types(r).count("RunStarted") for r in run_ids)


def test_relay_killed_mid_publish_and_every_message_tripled(make_system: MakeSystem, tenant: str) -> None:
    system = make_system(relay_publish_copies=3)
    # The reconciler waits with the workers: meanwhile it would re-publish every queued dispatch
    # (three copies each, every few seconds), which only buries the workers under more copies.
    system.start("project")
    rng = random.Random(7)
    accepted: list[uuid.UUID] = []
    kills, caught_mid_publish = scale(3, 20), 0
    per_batch = scale(120, 1000) // (kills + 1)
    for _ in range(kills):
        # A backlog waits; a new relay's first batch publishes it (three copies of each message) and
        # marks it sent in one transaction. Kill it in between: once the broker's queue starts to
        # grow. The workers start only after the kills, so the broker keeps whatever each relay
        # published: the kill was mid-publish when the queue grew while rows stayed unsent.
        accepted += system.submit(tenant, per_batch, duration=0.05)
        queued_before = system.queued()
        relay = system.start("relay")
        wait_until(
            exceeds(system.queued, queued_before),
            timeout=60,
            interval=0.002,
            message="the relay publishing",
        )
        time.sleep(rng.uniform(0.0, 0.02))
        relay.kill()  # SIGKILL: whatever it published but had not marked sent goes out again
        caught_mid_publish += system.queued() > queued_before and _unsent(system, tenant) > 0
    accepted += system.submit(tenant, per_batch, duration=0.05)
    for role in ("relay", "reconcile", "worker", "worker"):
        system.start(role)
    system.wait_all_terminal(tenant, timeout=90)
    terminals = check_invariant(system, tenant, accepted)
    print(f"\nrelay SIGKILLed {kills} times, {caught_mid_publish} of them between publish and mark-sent")
    assert caught_mid_publish >= 1, "a kill landed between publish and mark-sent"
    assert terminals == {"RunSucceeded": len(accepted)}
    assert _executions(system, accepted) == len(accepted), "unique executions = runs"


def _unsent(system: FaultSystem, tenant: str) -> int:
    query = sa.select(sa.func.count()).where(outbox.c.tenant_id == tenant, outbox.c.sent_at.is_(None))
    with system.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def test_redis_flushall_loses_nothing(
    make_system: MakeSystem, private_redis: RedisServer, tenant: str
) -> None:
    # No queue cap: every run must be in the broker when it is flushed (at full scale, more than the cap).
    system = make_system(queue_max_in_flight=0)
    for role in ("relay", "project", "reconcile"):
        system.start(role)
    accepted = system.submit(tenant, scale(50, 500), duration=0.05)
    # Every run is published and waiting in the broker (no worker yet) when it is flushed.
    wait_until(lambda: system.queued() == len(accepted), timeout=60, message="every run queued")
    private_redis.flushall()
    assert system.queued() == 0
    flushed_at = time.monotonic()
    system.start("worker")
    system.start("worker")
    system.wait_all_terminal(tenant, timeout=60)
    took = time.monotonic() - flushed_at
    print(f"\nFLUSHALL with {len(accepted)} queued runs: all terminal {took:.1f}s later")
    assert check_invariant(system, tenant, accepted) == {"RunSucceeded": len(accepted)}


def test_redis_sigkill_with_runs_queued_and_running(
    make_system: MakeSystem, private_redis: RedisServer, tenant: str
) -> None:
    system = make_system()
    for role in ("relay", "project", "reconcile", "worker", "worker"):
        system.start(role)
    accepted = system.submit(tenant, scale(40, 500), duration=0.5)

    def queued_and_running() -> bool:
        return system.queued() > 0 and bool(system.started_by(tenant))

    wait_until(queued_and_running, timeout=60, interval=0.02, message="runs both queued and running")
    private_redis.kill()
    time.sleep(2.0)  # the broker stays down a while: workers and the relay lose their connections
    private_redis.start()  # same port, AOF on: whatever it had synced comes back
    back_at = time.monotonic()
    system.wait_all_terminal(tenant, timeout=90)
    took = time.monotonic() - back_at
    print(
        f"\nredis-server SIGKILLed, {len(accepted)} runs in flight: all terminal {took:.1f}s after its return"
    )
    assert check_invariant(system, tenant, accepted) == {"RunSucceeded": len(accepted)}


def test_runs_longer_than_the_visibility_timeout_execute_once(make_system: MakeSystem, tenant: str) -> None:
    """Redis hands an unacknowledged message out again once the visibility timeout passes; the copy
    finds its attempt already active and is dropped, so each run executes exactly once."""
    system = make_system(visibility_timeout_seconds=2, lease_seconds=30.0, lease_renew_seconds=1.0)
    for role in ("relay", "project", "reconcile", "worker", "worker"):
        system.start(role)
    steps = 6
    accepted = system.submit(tenant, scale(4, 20), duration=7, steps=steps)
    system.wait_all_terminal(tenant, timeout=90)
    assert check_invariant(system, tenant, accepted) == {"RunSucceeded": len(accepted)}
    for run_id in accepted:
        types = system.event_types(run_id)
        assert types.count("RunStarted") == 1, types
        assert types.count("ProgressReported") == steps, "the job's work was done once"
    worker_logs = "".join(log.read_text(errors="replace") for log in system.log_dir.glob("worker-*.log"))
    redelivered = worker_logs.count("delivery.dropped")
    print(f"\nvisibility timeout 2s, runs of 7s: {redelivered} late copies dropped, each run executed once")
    assert redelivered >= 1, "the broker did hand out copies past the visibility timeout"
