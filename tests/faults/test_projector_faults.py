"""Projectors die mid-batch and compete; the rows always equal a clean rebuild and the checkpoint never
moves backwards (T11, T12 of the notes)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import psutil
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from orchestrator.projections.runner import PROJECTIONS, checkpoint
from orchestrator.store.events import append, head_position
from schemas.events import ProgressReported, RunCreated, RunStarted, RunSucceeded
from tests.faults.harness import FaultSystem, _assert_rebuild_matches, scale
from tests.services import RoleProcess, wait_until

MakeSystem = Callable[..., FaultSystem]


def _write_history(engine: Engine, tenant: str, runs: int) -> None:
    """A backlog written straight through the store: 4-6 events per run."""
    for start in range(0, runs, 200):
        with engine.begin() as conn:
            for n in range(start, min(runs, start + 200)):
                run_id = uuid.uuid4()
                history = [
                    RunCreated(run_id=run_id, tenant_id=tenant, kind="sleep", params={"n": n}),
                    RunStarted(attempt=1),
                    ProgressReported(attempt=1, done=1, total=2, counts={"records": n}),
                ]
                if n % 2:
                    history += [
                        ProgressReported(attempt=1, done=2, total=2),
                        RunSucceeded(attempt=1, result={"n": n}),
                    ]
                append(conn, run_id, tenant, history, 0)


class CheckpointWatch(threading.Thread):
    def __init__(self, engine: Engine) -> None:
        super().__init__(daemon=True)
        self.engine, self.stop, self.regressions, self.samples = engine, threading.Event(), 0, 0

    def run(self) -> None:
        last = 0
        while not self.stop.is_set():
            now = checkpoint(self.engine)
            self.regressions += now < last
            self.samples += 1
            last = max(last, now)
            time.sleep(0.01)


# pg_locks spans the cluster; advisory locks are per database, and other test databases hold the same key.
_HELD = (
    "WITH held AS (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = :k"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))"
)


def _lock_holders(engine: Engine) -> int:
    with engine.connect() as conn:
        query = sa.text(_HELD + " SELECT count(*) FROM held")
        return int(conn.execute(query, {"k": PROJECTIONS[0].lock_key & 0xFFFFFFFF}).scalar_one())


def test_projector_sigkilled_during_catch_up(make_system: MakeSystem, tenant: str) -> None:
    system = make_system()
    _write_history(system.engine, tenant, scale(4000, 20000))
    head = head_position_of(system.engine)
    watch = CheckpointWatch(system.engine)
    watch.start()
    kills = 0
    projector = system.start("project")
    while checkpoint(system.engine) < head and kills < scale(8, 20):
        time.sleep(0.4)
        projector.kill()
        kills += 1
        projector = system.start("project")
    wait_until(
        lambda: checkpoint(system.engine) >= head, timeout=scale(120, 900), message="projector caught up"
    )
    watch.stop.set()
    watch.join()
    print(f"\nprojector SIGKILLed {kills} times during catch-up over {head} events ({watch.samples} samples)")
    assert kills >= 3
    assert watch.regressions == 0
    _assert_rebuild_matches(system.engine, tenant)


def test_three_competing_projectors_give_the_result_of_one(make_system: MakeSystem, tenant: str) -> None:
    system = make_system()
    projectors = [system.start("project") for _ in range(3)]
    time.sleep(2.0)
    _write_history(system.engine, tenant, scale(1500, 10000))
    head = head_position_of(system.engine)
    holders = []
    deadline = time.monotonic() + scale(120, 900)
    while checkpoint(system.engine) < head and time.monotonic() < deadline:
        holders.append(_lock_holders(system.engine))
        time.sleep(0.05)
    assert max(holders, default=0) <= 1, "one lease holder at a time"
    # The holder dies: a standby takes over within seconds.
    holder = _holder(system.engine, projectors)
    holder.kill()
    _write_history(system.engine, tenant, 50)
    new_head = head_position_of(system.engine)
    started = time.monotonic()
    wait_until(lambda: checkpoint(system.engine) >= new_head, timeout=30, message="takeover")
    print(f"\ncompeting projectors: takeover and catch-up in {time.monotonic() - started:.1f}s")
    _assert_rebuild_matches(system.engine, tenant)


def _holder(engine: Engine, projectors: list[RoleProcess]) -> RoleProcess:
    """The projector process whose database session holds the projection's advisory lock."""
    query = sa.text(_HELD + " SELECT a.client_port FROM held JOIN pg_stat_activity a ON a.pid = held.pid")
    with engine.connect() as conn:
        port = conn.execute(query, {"k": PROJECTIONS[0].lock_key & 0xFFFFFFFF}).scalar_one()
    for p in projectors:
        assert p.proc is not None
        if any(c.laddr and c.laddr.port == port for c in psutil.Process(p.proc.pid).net_connections()):
            return p
    raise AssertionError("no projector holds the lock")


def head_position_of(engine: Engine) -> int:
    with engine.connect() as conn:
        return head_position(conn)
