"""What the tenancy tests share: the tenant tables, and the API deployed twice, once per wall.

Two walls keep tenants apart: every read query of the application filters on the caller's tenant, and
row-level security (migration 0003) hides other tenants' rows from the role API transactions run as.
Either one alone hides a hole in the other, so the isolation tests run against two deployments:

- `both walls`: the session's app and database, as production runs;
- `app filter only`: an app on a second database of its own in which every tenant table has row-level
  security disabled. The app still switches to `orch_app`, which there sees every tenant's rows, so only
  the application's own filters stand between tenants.

The second database is private to this session: row-level security is switched off per table, never
by altering `orch_app`, a role every database on the server (and every concurrent session) shares.
The policies alone are tested in test_row_level_security.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection, Engine

from orchestrator.api.app import create_app
from orchestrator.projections import runner
from orchestrator.services import RunService, SubmitRequest
from orchestrator.settings import Settings
from orchestrator.store import keys
from orchestrator.store.engine import make_engine
from orchestrator.store.migrate import upgrade
from orchestrator.store.schema import events
from orchestrator.store.tenancy import APP_ROLE
from tests import services
from tests.conftest import System


def tenant_tables(conn: Connection) -> list[str]:
    """Every table holding rows of a tenant. `api_keys` is read before any tenant is known (it is how
    a request finds its tenant), so it is the system's, not a tenant's."""
    return sorted(
        conn.execute(
            sa.text(
                "SELECT table_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND column_name = 'tenant_id' AND table_name <> 'api_keys'"
            )
        ).scalars()
    )


def as_app_role(conn: Connection, tenants: list[str] | None) -> None:
    """Make the rest of `conn`'s transaction run as the API does: the app role, with `tenants` in scope
    (None: the setting left unset, as in a transaction that never named a tenant)."""
    conn.exec_driver_sql(f"SET LOCAL ROLE {APP_ROLE}")
    if tenants is not None:
        conn.execute(sa.select(sa.func.set_config("orch.tenants", json.dumps(tenants), True)))


def settle(engine: Engine, *, in_process: bool = False, timeout: float = 30.0) -> None:
    """Until every read model shows every event committed so far: applied here (`in_process`, for a
    database no projector serves), or by the session's projector."""
    with engine.connect() as conn:
        head = conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.position), 0))).scalar_one()
    for projection in runner.PROJECTIONS:
        if in_process:
            runner.catch_up(engine, projection)
        assert runner.wait_for(engine, head, timeout, projection.name), f"{projection.name} is behind"


def idle_settings(settings: Settings, **update: Any) -> Settings:
    """Queues nobody consumes and hour-long leases: the tests' runs never take a slot of the session's
    worker, and only the test moves them, so the reconciler never declares one of their attempts lost."""
    return settings.model_copy(
        update={"queue_prefix": f"idle{uuid.uuid4().hex[:8]}", "lease_seconds": 3600.0, **update}
    )


@dataclass
class Deployment:
    """One API on one database, and the ways a test puts runs and keys in it."""

    engine: Engine
    client: TestClient
    service: RunService
    # Nothing else projects this database: the tests apply the log to the read models themselves.
    projects_in_process: bool
    live: dict[UUID, str] = field(default_factory=dict)  # pending runs -> their tenant

    def key(self, tenant: str, grants: tuple[str, ...] = ()) -> str:
        with self.engine.begin() as conn:
            key, _ = keys.create(conn, tenant, "test", grants=grants)
        return key

    def submit(self, tenant: str, kind: str = "sleep", **attributes: Any) -> UUID:
        params = services.placeholder_params(kind)
        request = SubmitRequest(
            tenant_id=tenant, kind=kind, params=params, attributes=attributes, actor="test"
        )
        run_id = self.service.submit(request).run_id
        self.live[run_id] = tenant
        return run_id

    def cancel(self, tenant: str, run_id: UUID) -> None:
        self.service.cancel(tenant, run_id, "test")
        self.live.pop(run_id, None)

    def cancel_live(self) -> None:
        """End what a test left pending: the reconciler re-publishes every dispatch nobody started."""
        for run_id, tenant in list(self.live.items()):
            self.cancel(tenant, run_id)

    def positions(self, run_id: UUID) -> list[int]:
        return [position for position, _ in self.log(run_id)]

    def log(self, run_id: UUID) -> list[tuple[int, str]]:
        """The run's events as (position, type), read as the owner."""
        with self.engine.connect() as conn:
            query = sa.select(events.c.position, events.c.type).where(events.c.stream_id == run_id)
            return [(p, t) for p, t in conn.execute(query.order_by(events.c.position))]

    def settle(self) -> None:
        settle(self.engine, in_process=self.projects_in_process)


@pytest.fixture(scope="session")
def both_walls(engine: Engine, settings: Settings, app_client: TestClient, system: System) -> Deployment:
    """The session's app and database; the session's projector keeps the read models up."""
    service = RunService(engine, idle_settings(settings))
    return Deployment(engine, app_client, service, projects_in_process=False)


@pytest.fixture(scope="session")
def app_filter_only(database_url: str, settings: Settings) -> Iterator[Deployment]:
    """An app whose database has no row-level security on any table: its filters are the only wall."""
    with services.fresh_database(database_url) as url:
        upgrade(url)
        engine = make_engine(url)
        try:
            _disable_row_level_security(engine)
            app_settings = idle_settings(settings, database_url=url)
            service = RunService(engine, app_settings)
            with TestClient(create_app(app_settings, engine)) as client:
                deployment = Deployment(engine, client, service, projects_in_process=True)
                _assert_the_app_role_sees_every_tenant(deployment)
                yield deployment
        finally:
            engine.dispose()


def _disable_row_level_security(engine: Engine) -> None:
    with engine.begin() as conn:
        protected = (
            conn.execute(
                sa.text(
                    "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
                    "AND (relrowsecurity OR relforcerowsecurity)"
                )
            )
            .scalars()
            .all()
        )
        for table in protected:
            conn.exec_driver_sql(f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY')
            conn.exec_driver_sql(f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY')


def _assert_the_app_role_sees_every_tenant(deployment: Deployment) -> None:
    """The variant means something only if the wall is really down: the app role, scoped to one tenant,
    must see another tenant's rows in every tenant table a submit writes."""
    probe = f"probe-{uuid.uuid4().hex[:8]}"
    run_id = deployment.submit(probe)
    deployment.cancel(probe, run_id)
    deployment.settle()
    with deployment.engine.begin() as conn:
        as_app_role(conn, ["someone-else"])
        for table in ("events", "outbox", "runs"):
            seen = conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE tenant_id = :t"), {"t": probe})
            assert seen.scalar_one() > 0, f"row-level security still hides {table}"


@pytest.fixture(scope="session", params=["both-walls", "app-filter-only"])
def deployment(request: pytest.FixtureRequest) -> Deployment:
    """The isolation tests run once per deployment: each wall has to hold on its own."""
    name = str(request.param).replace("-", "_")
    found: Deployment = request.getfixturevalue(name)
    return found
