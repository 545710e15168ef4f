"""`orchestrator rebuild` builds into copies beside the live tables and swaps them in: while it folds, readers
read and the live projector projects; the swapped-in tables keep every index name, policy and grant; a
failed rebuild leaves the live tables as they were; retention does not delete while a rebuild runs."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from orchestrator.projections import runner
from orchestrator.projections.runner import PROJECTIONS, catch_up, checkpoint, rebuild
from orchestrator.services import RunService, SubmitRequest
from orchestrator.settings import Settings
from orchestrator.store.schema import runs

RUNS = PROJECTIONS[0]
TABLES = [t.name for t in (RUNS.table, *RUNS.aggregate_tables)]


@pytest.fixture(scope="module")
def idle_service(engine: Engine, settings: Settings) -> RunService:
    """A queue no worker consumes: only the test moves its runs."""
    return RunService(engine, settings.model_copy(update={"queue_prefix": f"idle{uuid.uuid4().hex[:8]}"}))


def rows_of(engine: Engine, tenant: str) -> list[dict[str, Any]]:
    query = sa.select(runs).where(runs.c.tenant_id == tenant).order_by(runs.c.id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def catalog(conn: Connection) -> dict[str, Any]:
    """What the swap must keep of each table: index names and definitions, policies, grants, RLS flags."""
    found: dict[str, Any] = {}
    for table in TABLES:
        indexes = conn.execute(
            sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t ORDER BY 1"),
            {"t": table},
        )
        policies = conn.execute(
            sa.text(
                "SELECT policyname, permissive, roles, cmd, qual, with_check FROM pg_policies"
                " WHERE tablename = :t ORDER BY 1"
            ),
            {"t": table},
        )
        grants = conn.execute(
            sa.text(
                "SELECT grantee, privilege_type FROM information_schema.role_table_grants"
                " WHERE table_name = :t ORDER BY 1, 2"
            ),
            {"t": table},
        )
        flags = conn.execute(
            sa.text(
                "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = CAST(:t AS regclass)"
            ),
            {"t": table},
        )
        found[table] = [list(indexes), list(policies), list(grants), list(flags)]
    return found


def leftover_schemas(engine: Engine) -> list[str]:
    query = sa.text("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'orch_rebuild_%'")
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


def on_second_fold(monkeypatch: pytest.MonkeyPatch, action: Callable[[], None]) -> None:
    """Run `action` as the rebuild's second batch of copies begins, between transactions. Small batches
    and no lag allowance, so even a short log takes several batches before the swap."""
    real = runner._fold_into_copies
    calls = 0

    def fold(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            action()
        return real(*args)

    monkeypatch.setattr(runner, "_fold_into_copies", fold)
    monkeypatch.setattr(runner, "_CLOSE_ENOUGH", 0)


@pytest.fixture()
def paused(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Holds a rebuild at its second batch until released."""
    reached, release = threading.Event(), threading.Event()

    def hold() -> None:
        reached.set()
        assert release.wait(30), "the test never released the rebuild"

    on_second_fold(monkeypatch, hold)
    yield reached, release
    release.set()


def submit(service: RunService, tenant: str, count: int) -> list[uuid.UUID]:
    return [
        o.run_id
        for o in service.submit_batch([SubmitRequest(tenant_id=tenant, kind="sleep") for _ in range(count)])
    ]


def test_readers_and_the_live_projector_go_on_while_a_rebuild_folds(
    idle_service: RunService,
    engine: Engine,
    tenant: str,
    paused: tuple[threading.Event, threading.Event],
) -> None:
    reached, release = paused
    submit(idle_service, tenant, 60)
    catch_up(engine, RUNS)
    with engine.connect() as conn:
        before = catalog(conn)
    outcome: list[BaseException | int] = []

    def rebuild_in_background() -> None:
        try:
            outcome.append(rebuild(engine, RUNS, batch_size=20))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=rebuild_in_background)
    thread.start()
    assert reached.wait(30), "the rebuild never reached its second batch"
    # Mid-rebuild: a reader gets its rows at once (no lock of the rebuild's is in its way), and runs
    # submitted now are projected by the live projector.
    with engine.connect() as conn:
        conn.exec_driver_sql("SET LOCAL lock_timeout = '1s'")
        assert conn.execute(sa.select(sa.func.count()).where(runs.c.tenant_id == tenant)).scalar_one() == 60
        assert not runner.retention_may_run(conn), "retention deletes nothing while a rebuild runs"
    late = submit(idle_service, tenant, 5)
    catch_up(engine, RUNS)
    live = rows_of(engine, tenant)
    assert {r["id"] for r in live} >= set(late)
    release.set()
    thread.join(60)
    assert outcome and isinstance(outcome[0], int), outcome
    # The swapped-in rows equal what the live projector had, late runs included, and the checkpoint
    # lets the live projector go on from where the copies ended.
    assert rows_of(engine, tenant) == live
    with engine.connect() as conn:
        assert catalog(conn) == before
        assert runner.retention_may_run(conn)
        head = conn.execute(sa.select(sa.func.max(sa.column("position"))).select_from(sa.table("events")))
        assert checkpoint(engine) <= int(head.scalar_one())
    more = submit(idle_service, tenant, 3)
    catch_up(engine, RUNS)
    assert {r["id"] for r in rows_of(engine, tenant)} >= set(more)
    assert not leftover_schemas(engine)


def test_a_failed_rebuild_leaves_the_live_tables_as_they_were(
    idle_service: RunService, engine: Engine, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    submit(idle_service, tenant, 30)
    catch_up(engine, RUNS)
    live = rows_of(engine, tenant)

    def die() -> None:
        raise RuntimeError("the rebuild dies here")

    on_second_fold(monkeypatch, die)
    with pytest.raises(RuntimeError, match="dies here"):
        rebuild(engine, RUNS, batch_size=10)
    assert rows_of(engine, tenant) == live
    assert not leftover_schemas(engine)
    with engine.connect() as conn:
        assert runner.retention_may_run(conn), "the failed rebuild let go of its lock"
