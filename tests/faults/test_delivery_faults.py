"""The broker is a hint: relays die mid-publish, messages arrive three times, Redis is killed or
flushed; every run still executes once per attempt and ends exactly once (T4, T10 of the notes)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from tests.faults.harness import FaultSystem, RedisServer, check_invariant, scale

MakeSystem = Callable[..., FaultSystem]


def _executions(system: FaultSystem, run_ids: list) -> int:  # type: ignore[type-arg]
    return sum(system.event_types(r).count("RunStarted") for r in run_ids)


def test_relay_killed_mid_publish_and_every_message_tripled(make_system: MakeSystem, tenant: str) -> None:
    system = make_system(relay_publish_copies=3)
    for role in ("project", "reconcile", "worker", "worker"):
        system.start(role)
    rng = random.Random(7)
    relay = system.start("relay")
    accepted = []
    kills = scale(6, 20)
    total = scale(120, 1000)
    per_batch = total // kills
    for _ in range(kills):
        accepted += system.submit(tenant, per_batch, duration=0.05)
        time.sleep(rng.uniform(0.05, 0.4))
        relay.kill()  # SIGKILL: whatever it published but had not marked sent goes out again
        relay = system.start("relay")
    system.wait_all_terminal(tenant, timeout=90)
    terminals = check_invariant(system, tenant, accepted)
    assert terminals == {"RunSucceeded": len(accepted)}
    assert _executions(system, accepted) == len(accepted), "unique executions = runs"


def test_redis_flushall_loses_nothing(
    make_system: MakeSystem, private_redis: RedisServer, tenant: str
) -> None:
    system = make_system()
    for role in ("relay", "project", "reconcile"):
        system.start(role)
    accepted = system.submit(tenant, scale(50, 500), duration=0.05)
    time.sleep(1.5)  # published, queued, no worker yet
    private_redis.flushall()
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
    time.sleep(1.0)
    private_redis.kill()
    time.sleep(2.0)
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
