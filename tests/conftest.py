from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from orchestrator.api.app import create_app
from orchestrator.services import RunService
from orchestrator.settings import Settings
from orchestrator.store import keys
from orchestrator.store.engine import make_engine
from orchestrator.store.migrate import upgrade
from tests import services


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with services.postgres_admin_url() as admin, services.fresh_database(admin) as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    with services.redis_url() as url:
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str, broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=broker_url,
        data_dir=tmp_path_factory.mktemp("data"),
        secret_key="test-secret-long-enough-to-pass-the-check",
        queue_prefix=f"t{uuid.uuid4().hex[:10]}",
        lease_seconds=4.0,
        lease_renew_seconds=1.0,
        reconcile_interval_seconds=1.0,
        dispatch_timeout_seconds=5.0,
        retry_base_seconds=0.2,
        retry_max_seconds=1.0,
        worker_concurrency=2,
        worker_shutdown_seconds=3.0,
        relay_poll_seconds=0.2,
        projector_poll_seconds=0.2,
    )


def settings_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"ORCH_{name.upper()}"] = str(value)
    return env


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url or "", pool_size=20)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def service(engine: Engine, settings: Settings) -> RunService:
    return RunService(engine, settings)


@pytest.fixture(scope="session")
def app_client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine)) as client:
        yield client


@pytest.fixture()
def tenant() -> str:
    """Tests isolate by tenant instead of cleaning up: every test gets its own."""
    return f"tenant-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def make_key(engine: Engine) -> Callable[[str], str]:
    def _make(tenant_id: str) -> str:
        with engine.begin() as conn:
            key, _ = keys.create(conn, tenant_id, "test")
        return key

    return _make


@pytest.fixture()
def auth(make_key: Callable[[str], str], tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key(tenant)}"}


class System:
    """Relay, projector, reconciler and worker processes against the session's database and broker."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.env = settings_env(settings)
        self.log_dir = log_dir
        self.roles: dict[str, services.RoleProcess] = {}

    def start(self, *roles: str) -> None:
        for role in roles:
            self.roles[role] = services.RoleProcess(role, self.env, self.log_dir).start()

    def stop(self) -> None:
        for role in self.roles.values():
            role.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{proc.tail()}" for name, proc in self.roles.items())


@pytest.fixture(scope="session")
def system(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = System(settings, tmp_path_factory.mktemp("logs"))
    running.start("relay", "project", "reconcile", "worker")
    yield running
    running.stop()
