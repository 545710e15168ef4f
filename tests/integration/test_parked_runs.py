"""Parking and resuming through the write path, with no worker: children ending at the same moment resume
their parent exactly once, a park that comes after its children ended resumes at once, and the reconciler
resumes a parked run whose resume was never written."""

from __future__ import annotations

import threading
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from orchestrator.domain.commands import ParkAttempt, Succeed
from orchestrator.processes.reconciler import resume_ready_parked
from orchestrator.services import RunService, SubmitRequest
from orchestrator.settings import Settings
from orchestrator.store import children
from orchestrator.store.events import append, read_stream
from orchestrator.store.schema import outbox, run_leases
from schemas.events import RunSucceeded


@pytest.fixture()
def idle(engine: Engine, settings: Settings) -> RunService:
    """A queue no worker consumes: the test plays the worker."""
    return RunService(engine, settings.model_copy(update={"queue_prefix": f"park{uuid.uuid4().hex[:8]}"}))


def family(service: RunService, tenant: str, children: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    parent = service.submit(SubmitRequest(tenant_id=tenant, kind="workflow")).run_id
    assert service.start_attempt(parent, 1, "test") is not None
    kids = [
        o.run_id
        for o in service.submit_batch(
            [SubmitRequest(tenant_id=tenant, kind="sleep", parent_id=parent) for _ in range(children)]
        )
    ]
    for kid in kids:
        assert service.start_attempt(kid, 1, "test") is not None
    return parent, kids


def types(engine: Engine, run_id: uuid.UUID) -> list[str]:
    with engine.connect() as conn:
        return [r.type for r in read_stream(conn, run_id)]


def dispatches(engine: Engine, run_id: uuid.UUID) -> list[int]:
    query = sa.select(outbox.c.attempt).where(outbox.c.run_id == run_id).order_by(outbox.c.id)
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


def test_children_ending_together_resume_their_parent_once(
    idle: RunService, engine: Engine, tenant: str
) -> None:
    for _ in range(5):
        parent, kids = family(idle, tenant, 2)
        parked = idle.execute(parent, ParkAttempt(1, "wait", tuple(kids)))
        assert [r.type for r in parked.recorded] == ["RunParked"]
        with engine.connect() as conn:  # the lease is gone, so no reconciler can take the wait for a loss
            held = conn.execute(sa.select(sa.func.count()).where(run_leases.c.run_id == parent))
            assert held.scalar_one() == 0
        gate = threading.Barrier(2)

        def finish(kid: uuid.UUID, gate: threading.Barrier = gate) -> None:
            gate.wait()
            idle.execute(kid, Succeed(attempt=1))

        threads = [threading.Thread(target=finish, args=(kid,)) for kid in kids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert types(engine, parent).count("RunResumed") == 1
        assert dispatches(engine, parent) == [1, 2]  # the next attempt is dispatched once
        assert idle.start_attempt(parent, 2, "test") is not None


def test_a_park_after_the_children_ended_resumes_at_once(
    idle: RunService, engine: Engine, tenant: str
) -> None:
    parent, kids = family(idle, tenant, 2)
    for kid in kids:
        idle.execute(kid, Succeed(attempt=1))
    parked = idle.execute(parent, ParkAttempt(1, "wait", tuple(kids)))
    assert [r.type for r in parked.recorded] == ["RunParked", "RunResumed"]
    assert dispatches(engine, parent) == [1, 2]


def test_the_reconciler_resumes_a_parked_run_whose_children_all_ended(
    idle: RunService, engine: Engine, tenant: str
) -> None:
    parent, kids = family(idle, tenant, 1)
    idle.execute(parent, ParkAttempt(1, "wait", tuple(kids)))
    # The child's end written behind the write path's back (as a crash between writes might leave it):
    # nothing resumed the parent.
    with engine.begin() as conn:
        version = len(read_stream(conn, kids[0]))
        append(conn, kids[0], tenant, [RunSucceeded(attempt=1)], version, {"actor": "test"})
    assert "RunResumed" not in types(engine, parent)
    assert resume_ready_parked(idle) >= 1 and types(engine, parent)[-1] == "RunResumed"
    assert dispatches(engine, parent) == [1, 2]


def test_runs_still_waiting_never_hide_a_ready_one_from_the_reconciler(
    idle: RunService, engine: Engine, tenant: str
) -> None:
    """The safety net looks at a bounded page of parked runs: only ready ones may fill it, or enough runs
    waiting on long children would keep a ready run from ever being seen."""
    waiting = []
    for _ in range(3):
        parent, kids = family(idle, tenant, 1)
        idle.execute(parent, ParkAttempt(1, "wait", tuple(kids)))
        waiting.append(parent)
    ready, kids = family(idle, tenant, 2)
    idle.execute(ready, ParkAttempt(1, "wait", tuple(kids)))
    with engine.begin() as conn:  # both children end behind the write path's back
        for kid in kids:
            append(
                conn, kid, tenant, [RunSucceeded(attempt=1)], len(read_stream(conn, kid)), {"actor": "test"}
            )
    with engine.connect() as conn:
        found = [run_id for run_id, _ in children.parked_runs(conn, limit=100_000)]
    assert ready in found
    assert not set(waiting) & set(found)
