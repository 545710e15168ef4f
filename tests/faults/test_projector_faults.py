"""Projectors die mid-batch and compete; the rows always equal a clean rebuild and the checkpoint never
moves backwards (T11, T12 of the notes)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable

import psutil
from sqlalchemy.engine import Engine, make_url

from orchestrator.projections.runner import PROJECTIONS, checkpoint
from orchestrator.store.events import append, head_position
from schemas.events import ProgressReported, RunCreated, RunStarted, RunSucceeded
from tests.faults.harness import FaultSystem, _assert_rebuild_matches, scale
from tests.services import RoleProcess, advisory_lock_holders, wait_until

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


class HolderWatch(threading.Thread):
    """Samples how many sessions hold each projection's advisory lock, for as long as it runs."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(daemon=True)
        self.engine, self.stop, self.most, self.samples = engine, threading.Event(), 0, 0

    def run(self) -> None:
        while not self.stop.is_set():
            for projection in PROJECTIONS:
                self.most = max(self.most, len(advisory_lock_holders(self.engine, projection.lock_key)))
            self.samples += 1
            time.sleep(0.05)


def _progress_past(engine: Engine, at: int, head: int) -> Callable[[], bool]:
    """A projector that started at checkpoint `at` has committed a batch (or there was none left)."""
    return lambda: checkpoint(engine) > at or checkpoint(engine) >= head


def test_projector_sigkilled_during_catch_up(make_system: MakeSystem, tenant: str) -> None:
    system = make_system()
    engine = system.engine
    # Big enough that a projector folding batches of 2,000 events is still behind when it is killed.
    _write_history(engine, tenant, scale(3000, 20000))
    head = head_position_of(engine)
    watch = CheckpointWatch(engine)
    watch.start()
    rng = random.Random(11)
    wanted, kills, killed_behind = scale(3, 20), 0, 0
    while killed_behind < wanted and kills < 4 * wanted:
        if checkpoint(engine) >= head:  # caught up between kills: the next projector gets a new backlog
            _write_history(engine, tenant, scale(1500, 5000))
            head = head_position_of(engine)
        at_start = checkpoint(engine)
        projector = system.start("project")
        # A kill while the process is still importing would prove nothing: wait until this projector
        # has committed a batch of its own, then kill it at a random point of the batches that follow.
        try:
            wait_until(_progress_past(engine, at_start, head), timeout=120, message="the projector's batch")
        except AssertionError:
            print(system.logs())
            raise
        time.sleep(rng.uniform(0.0, 0.15))
        killed_behind += checkpoint(engine) < head
        projector.kill()
        kills += 1
    system.start("project")
    wait_until(lambda: checkpoint(engine) >= head, timeout=scale(120, 900), message="projector caught up")
    watch.stop.set()
    watch.join()
    print(
        f"\nprojector SIGKILLed {kills} times during catch-up over {head} events, {killed_behind} of them "
        f"with the log still ahead ({watch.samples} samples)"
    )
    assert killed_behind >= wanted, "projectors were killed with the log still ahead"
    assert watch.regressions == 0
    _assert_rebuild_matches(engine, tenant)


def test_three_competing_projectors_give_the_result_of_one(make_system: MakeSystem, tenant: str) -> None:
    system = make_system()
    projectors = [system.start("project") for _ in range(3)]
    port = make_url(system.settings.database_url or "").port or 5432
    # All three compete from the start: each is connected (a standby retries the lock every poll) and
    # one of them holds each projection's lock.
    wait_until(
        lambda: (
            all(_connected(p, port) for p in projectors)
            and all(advisory_lock_holders(system.engine, p.lock_key) for p in PROJECTIONS)
        ),
        timeout=60,
        message="three projectors competing",
    )
    holders = HolderWatch(system.engine)
    holders.start()
    _write_history(system.engine, tenant, scale(600, 10000))
    head = head_position_of(system.engine)
    wait_until(lambda: checkpoint(system.engine) >= head, timeout=scale(120, 900), message="caught up")
    # The holder dies: a standby takes over within seconds.
    holder = _holder(system.engine, projectors)
    holder.kill()
    _write_history(system.engine, tenant, 50)
    new_head = head_position_of(system.engine)
    started = time.monotonic()
    wait_until(lambda: checkpoint(system.engine) >= new_head, timeout=30, message="takeover")
    holders.stop.set()
    holders.join()
    print(
        f"\ncompeting projectors: takeover and catch-up in {time.monotonic() - started:.1f}s; "
        f"at most {holders.most} holder per lock in {holders.samples} samples"
    )
    assert holders.samples >= 10
    assert holders.most == 1, "one lock holder at a time"
    _assert_rebuild_matches(system.engine, tenant)


def _connected(process: RoleProcess, port: int) -> bool:
    """Whether the process has a connection open to the PostgreSQL server on `port`."""
    if not process.alive():
        raise AssertionError(f"{process.log_path.name} exited:\n{process.tail()}")
    assert process.proc is not None
    connections = psutil.Process(process.proc.pid).net_connections(kind="tcp")
    return any(c.raddr and c.raddr.port == port for c in connections)


def _holder(engine: Engine, projectors: list[RoleProcess]) -> RoleProcess:
    """The projector process whose database session holds the runs projection's advisory lock."""
    (port,) = advisory_lock_holders(engine, PROJECTIONS[0].lock_key)
    for p in projectors:
        assert p.proc is not None
        if any(c.laddr and c.laddr.port == port for c in psutil.Process(p.proc.pid).net_connections()):
            return p
    raise AssertionError("no projector holds the lock")


def head_position_of(engine: Engine) -> int:
    with engine.connect() as conn:
        return head_position(conn)
