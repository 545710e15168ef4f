"""The runs projection: a rebuild from position 0 reproduces the live rows exactly."""

from __future__ import annotations

import contextlib
import random
import uuid
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from orchestrator.domain.commands import Cancel, Fail, FailAttempt, ReportProgress, StartAttempt, Succeed
from orchestrator.domain.errors import DomainError, IllegalTransition
from orchestrator.projections.runner import PROJECTIONS, catch_up, checkpoint, rebuild
from orchestrator.services import RunService, SubmitRequest
from orchestrator.settings import Settings
from orchestrator.store.schema import run_counts, runs
from schemas.runs import ErrorCode

RUNS = PROJECTIONS[0]


def _rows(engine: Engine, tenant: str) -> list[dict[str, Any]]:
    # Other tests' runs may still be moving while this one runs, so compare this tenant's rows only.
    query = sa.select(runs).where(runs.c.tenant_id == tenant).order_by(runs.c.id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


@pytest.fixture(scope="module")
def idle_service(engine: Engine, settings: Settings) -> RunService:
    """Submits to a queue no worker consumes, with hour-long leases that the session's reconciler will
    not find expired: only this test moves its runs."""
    idle = settings.model_copy(
        update={"queue_prefix": f"idle{uuid.uuid4().hex[:8]}", "lease_seconds": 3600.0}
    )
    return RunService(engine, idle)


def _counts(engine: Engine, tenant: str) -> tuple[dict[tuple[Any, ...], int], dict[tuple[Any, ...], int]]:
    """The projection's counters for the tenant, and the same counts taken from its rows."""
    grouped = sa.select(runs.c.kind, runs.c.status, runs.c.parent_id.is_(None), sa.func.count()).where(
        runs.c.tenant_id == tenant
    )
    kept = sa.select(run_counts.c.kind, run_counts.c.status, run_counts.c.top_level, run_counts.c.count)
    with engine.connect() as conn:
        counted = {tuple(r[:3]): int(r[3]) for r in conn.execute(grouped.group_by(sa.text("1, 2, 3")))}
        counters = {
            tuple(r[:3]): int(r[3]) for r in conn.execute(kept.where(run_counts.c.tenant_id == tenant))
        }
    return counters, counted


def _mixed_workload(service: RunService, tenant: str, seed: int, count: int) -> None:
    rng = random.Random(seed)
    parent = None
    for _ in range(count):
        request = SubmitRequest(
            tenant_id=tenant, kind="sleep", params={"duration": rng.random()}, parent_id=parent
        )
        try:
            outcome = service.submit(request)
        except IllegalTransition:  # the parent has finished meanwhile: it takes no new child
            outcome = service.submit(replace(request, parent_id=None))
        run_id = outcome.run_id
        if rng.random() < 0.3:
            parent = run_id
        steps = [
            StartAttempt(1, "w"),
            ReportProgress(1, 1, 3, {"records": rng.randint(0, 9)}),
            rng.choice(
                [Succeed(1, {"ok": True}, {"m": 1}), Fail(1, ErrorCode.INVALID_OUTPUT, "bad"), Cancel()]
            ),
            FailAttempt(1, ErrorCode.SERVICE_UNAVAILABLE, "flaky", service.next_retry_at(1)),
            StartAttempt(2, "w"),
            Succeed(2, {"ok": 2}),
        ]
        for command in steps[: rng.randint(0, len(steps))]:
            with contextlib.suppress(DomainError):
                service.execute(run_id, command)


def test_rebuild_equals_live_after_a_mixed_workload(
    engine: Engine, idle_service: RunService, tenant: str
) -> None:
    _mixed_workload(idle_service, tenant, seed=7, count=60)
    catch_up(engine, RUNS)
    live = _rows(engine, tenant)
    before = checkpoint(engine)
    rebuild(engine, RUNS)
    assert _rows(engine, tenant) == live
    assert checkpoint(engine) >= before
    counters, counted = _counts(engine, tenant)
    assert counters == counted and sum(counted.values()) == 60
    statuses = {r["status"] for r in live if r["tenant_id"] == tenant}
    assert {"pending", "running", "succeeded"} <= statuses


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000))
def test_rebuild_equals_live_for_random_workloads(
    engine: Engine, idle_service: RunService, seed: int
) -> None:
    tenant = f"prop-{uuid.uuid4().hex[:8]}"
    _mixed_workload(idle_service, tenant, seed=seed, count=10)
    catch_up(engine, RUNS)
    live = _rows(engine, tenant)
    counters, counted = _counts(engine, tenant)
    assert counters == counted, "the counters kept batch by batch equal a COUNT(*) of the rows"
    rebuild(engine, RUNS)
    assert _rows(engine, tenant) == live
    assert _counts(engine, tenant) == (counters, counted)
