from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from orchestrator.store.engine import make_engine
from orchestrator.store.migrate import upgrade
from tests import services
from tests.faults.harness import FaultSystem, RedisServer, fault_settings


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    with services.postgres_admin_url() as url:
        yield url


@pytest.fixture()
def fault_db(admin_url: str) -> Iterator[str]:
    with services.fresh_database(admin_url) as url:
        upgrade(url)
        yield url


@pytest.fixture()
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def fault_engine(fault_db: str) -> Iterator[Engine]:
    engine = make_engine(fault_db, pool_size=10)
    yield engine
    engine.dispose()


@pytest.fixture()
def make_system(
    fault_db: str, private_redis: RedisServer, fault_engine: Engine, tmp_path: Path
) -> Iterator[Callable[..., FaultSystem]]:
    created: list[FaultSystem] = []

    def _make(**overrides: object) -> FaultSystem:
        settings = fault_settings(fault_db, private_redis.url, tmp_path / "data", **overrides)
        system = FaultSystem(settings, fault_engine, tmp_path)
        created.append(system)
        return system

    yield _make
    for system in created:
        system.stop()
