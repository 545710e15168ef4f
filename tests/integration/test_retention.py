"""Retention on a database of its own (so a whole-table comparison with a rebuild sees nothing else): old
finished run trees go whole, with their events and every read-model row; what is live, young, not yet
projected, or of a tenant without a period stays; and the read models equal a rebuild of what remains."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from orchestrator.cli import app as cli
from orchestrator.domain.commands import FinishStep, StartAttempt, StartStep, Succeed
from orchestrator.processes.reconciler import run_reconciler
from orchestrator.processes.retention import apply_retention
from orchestrator.projections.runner import PROJECTIONS, catch_up, checkpoint, rebuild
from orchestrator.services import RunService, SubmitRequest
from orchestrator.settings import Settings, get_settings
from orchestrator.store.engine import make_engine
from orchestrator.store.migrate import upgrade
from orchestrator.store.schema import (
    events,
    idempotency_keys,
    outbox,
    run_counts,
    run_latency,
    run_started,
    run_steps,
    runs,
)
from tests import services
from tests.services import wait_until

READ_MODELS = (runs, run_steps, run_counts, run_started, run_latency)


@dataclass(frozen=True)
class Own:
    engine: Engine
    settings: Settings
    service: RunService


@pytest.fixture(scope="module")
def own(settings: Settings) -> Iterator[Own]:
    with services.postgres_admin_url() as admin, services.fresh_database(admin) as url:
        upgrade(url)
        engine = make_engine(url)
        # Tenant "old" keeps one day, "forever" overrides nothing (the default keeps forever); batches of 3.
        mine = settings.model_copy(
            update={"database_url": url, "retention_tenant_days": {"old": 1.0}, "retention_batch_runs": 3}
        )
        try:
            yield Own(engine, mine, RunService(engine, mine))
        finally:
            engine.dispose()


def _submit(own: Own, tenant: str, parent: UUID | None = None, key: str | None = None) -> UUID:
    request = SubmitRequest(tenant, "sleep", {"duration": 1}, parent_id=parent, idempotency_key=key)
    return own.service.submit(request).run_id


def _succeed(own: Own, run_id: UUID) -> None:
    for command in (
        StartAttempt(attempt=1, worker="w"),
        StartStep(attempt=1, step_key="s", sequence=1),
        FinishStep(attempt=1, step_key="s", sequence=1),
        Succeed(attempt=1),
    ):
        own.service.execute(run_id, command)


def _project(engine: Engine) -> None:
    for projection in PROJECTIONS:
        catch_up(engine, projection)


def _row(row: Any) -> dict[str, Any]:
    """A row to compare. Latency sums are floats that retention subtracts from, so they equal a rebuild's
    up to float rounding; the seconds summed come from microsecond timestamps, so 6 decimals are exact."""
    values = dict(row._mapping)
    if "total" in values:
        values["total"] = round(values["total"], 6)
    return values


def _snapshot(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    with engine.connect() as conn:
        return {
            table.name: [
                _row(row) for row in conn.execute(sa.select(table).order_by(*table.primary_key.columns))
            ]
            for table in READ_MODELS
        }


def _streams(engine: Engine, ids: list[UUID]) -> set[UUID]:
    with engine.connect() as conn:
        return set(conn.scalars(sa.select(events.c.stream_id).where(events.c.stream_id.in_(ids)).distinct()))


def test_retention_deletes_old_finished_trees_whole_and_leaves_a_rebuildable_log(own: Own) -> None:
    # Deleted: a canceled tree of four (more than one batch of 3, so it goes alone), a succeeded run with
    # steps and an idempotency key.
    tree_root = _submit(own, "old")
    children = [_submit(own, "old", tree_root) for _ in range(2)]
    grandchild = _submit(own, "old", children[0])
    own.service.cancel("old", tree_root)
    succeeded = _submit(own, "old", key=f"k-{uuid.uuid4()}")
    _succeed(own, succeeded)
    # Kept: a finished root with a live child, a live run, and another tenant's finished run.
    half_root = _submit(own, "old")
    live_child = _submit(own, "old", half_root)
    _succeed(own, half_root)
    live = _submit(own, "old")
    forever = _submit(own, "forever")
    _succeed(own, forever)
    _project(own.engine)
    # Kept too: a finished run the runs projection shows but the steps projection has not reached yet.
    unprojected = _submit(own, "old")
    _succeed(own, unprojected)
    catch_up(own.engine, PROJECTIONS[0])

    gone = [tree_root, *children, grandchild, succeeded]
    kept = [half_root, live_child, live, forever, unprojected]
    later = datetime.now(UTC) + timedelta(days=2)
    before = _snapshot(own.engine)
    dry = apply_retention(own.engine, own.settings, now=later, dry_run=True)
    assert (dry.trees, dry.runs) == (2, 5) and dry.events > 5
    assert _snapshot(own.engine) == before and _streams(own.engine, gone) == set(gone), (
        "a dry run deletes nothing"
    )

    # Today nothing is old enough; two days on, the two old trees go.
    assert apply_retention(own.engine, own.settings).runs == 0
    checkpoints = [checkpoint(own.engine, p.name) for p in PROJECTIONS]
    report = apply_retention(own.engine, own.settings, now=later)
    assert (report.trees, report.runs, report.events, report.tenants) == (2, 5, dry.events, ["old"])
    assert report.batches >= 2
    assert _streams(own.engine, gone) == set()
    assert _streams(own.engine, kept) == set(kept)
    with own.engine.connect() as conn:
        for table, column in (
            (runs, "id"),
            (run_steps, "run_id"),
            (outbox, "run_id"),
            (idempotency_keys, "run_id"),
        ):
            assert not conn.execute(sa.select(table).where(table.c[column].in_(gone))).first(), table.name
        remaining = set(conn.scalars(sa.select(runs.c.id)))
    assert remaining == set(kept)

    # The projectors' positions did not move, and a projector running on finds only the one new event it
    # has not seen: nothing re-read, nothing skipped.
    assert [checkpoint(own.engine, p.name) for p in PROJECTIONS] == checkpoints
    _project(own.engine)
    live_models = _snapshot(own.engine)
    assert {r["id"] for r in live_models["runs"]} == set(kept)
    # The read models (rows, counters, metrics aggregates) equal a rebuild from the log that remains.
    for projection in PROJECTIONS:
        rebuild(own.engine, projection)
    assert _snapshot(own.engine) == live_models

    # Once projected, the last old run goes too; the tree with a live child still stays.
    assert apply_retention(own.engine, own.settings, now=later).runs == 1
    assert _streams(own.engine, kept) == set(kept) - {unprojected}


def test_a_run_canceled_after_the_cutoff_is_kept(own: Own) -> None:
    run = _submit(own, "old")
    own.service.cancel("old", run)
    _project(own.engine)
    # finished 23 hours "ago": younger than the tenant's day
    assert apply_retention(own.engine, own.settings, now=datetime.now(UTC) + timedelta(hours=23)).runs == 0
    assert _streams(own.engine, [run]) == {run}


def test_the_cli_runs_a_pass_and_a_dry_run(own: Own, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _submit(own, "cli")
    own.service.cancel("cli", run)
    _project(own.engine)
    env = services.settings_env(own.settings)
    runner = CliRunner()
    try:
        get_settings.cache_clear()
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("ORCH_RETENTION_TENANT_DAYS", "{}")
        refused = runner.invoke(cli, ["retention", "run"])
        assert refused.exit_code == 2 and "ORCH_RETENTION_DAYS" in refused.output
        # A period of 0.00001 days (under a second): the run just canceled is old enough.
        monkeypatch.setenv("ORCH_RETENTION_TENANT_DAYS", '{"cli": 0.00001}')
        get_settings.cache_clear()
        wait_until(
            lambda: (
                apply_retention(
                    own.engine,
                    own.settings.model_copy(update={"retention_tenant_days": {"cli": 0.00001}}),
                    tenants=["cli"],
                    dry_run=True,
                ).runs
                == 1
            )
        )
        dry = runner.invoke(cli, ["retention", "run", "--dry-run", "--tenant", "cli"])
        assert dry.exit_code == 0, dry.output
        assert json.loads(dry.stdout)["runs"] == 1 and _streams(own.engine, [run]) == {run}
        done = runner.invoke(cli, ["retention", "run", "--tenant", "cli"])
        assert done.exit_code == 0, done.output
        assert json.loads(done.stdout)["runs"] == 1 and _streams(own.engine, [run]) == set()
    finally:
        get_settings.cache_clear()


def test_the_reconciler_sweeps_on_its_schedule(own: Own) -> None:
    run = _submit(own, "scheduled")
    own.service.cancel("scheduled", run)
    _project(own.engine)
    swept = own.settings.model_copy(
        update={"retention_tenant_days": {"scheduled": 0.00001}, "retention_interval_seconds": 0.2}
    )
    stop = threading.Event()
    loop = threading.Thread(target=run_reconciler, args=(RunService(own.engine, swept), stop), daemon=True)
    loop.start()
    try:
        wait_until(lambda: not _streams(own.engine, [run]), timeout=10, message="the scheduled sweep")
    finally:
        stop.set()
        loop.join(10)
