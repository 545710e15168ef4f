"""Session fixtures (one fresh database, one queue prefix, the role processes) and the test tiers.

Every test gets exactly one tier marker, so `pytest -m unit` (and `make unit`) can run without any
PostgreSQL or Redis:
- `e2e`: tests/e2e, which starts `orchestrator up` with its own embedded servers;
- `unit`: every test whose fixtures are all service-free (pytest's own, tests/unit's, or listed in
  PURE_FIXTURES), wherever it lives;
- `faults`: the rest of tests/faults (a database and a redis-server of their own per test);
- `integration`: the rest (the session's database, broker and role processes).
A test that says its tier with a marker keeps it. Application modules are imported inside the fixtures,
so the unit tier does not pay for (or depend on) the API and store at collection time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests import services
from tests.services import settings_env  # noqa: F401  (re-exported: several test modules import it here)

if TYPE_CHECKING:
    from fastapi.testclient import TestClient
    from sqlalchemy.engine import Engine

    from orchestrator.services import RunService
    from orchestrator.settings import Settings

TIERS = ("unit", "integration", "faults", "e2e")
RUN_ORDER = ("unit", "integration", "e2e", "faults")
# Fixtures defined in tests/ outside tests/unit that touch no server.
PURE_FIXTURES = frozenset({"tenant"})


def _needs_services(item: pytest.Item) -> bool:
    """Whether any fixture the test uses (its whole closure) comes from the service-backed test code.
    Conservative: a fixture defined in a test module or a conftest outside tests/unit counts, unless it
    is listed as pure. Fixtures requested at run time (getfixturevalue) are invisible here, which is
    why the unit tier also runs with services forbidden."""
    fixtures = getattr(item, "_fixtureinfo", None)
    if fixtures is None:
        return True
    for name in getattr(item, "fixturenames", ()):
        for definition in fixtures.name2fixturedefs.get(name, ()):
            module = getattr(definition.func, "__module__", "") or ""
            ours = module.startswith("tests.") and not module.startswith("tests.unit")
            if ours and name not in PURE_FIXTURES:
                return True
    return False


def tier_of(item: pytest.Item) -> str:
    path = Path(str(item.path)).resolve()
    parts = path.relative_to(Path(__file__).resolve().parent).parts
    if parts[0] == "e2e":
        return "e2e"
    if not _needs_services(item):
        return "unit"
    return "faults" if parts[0] == "faults" else "integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its tier, and run the tiers cheapest first (a stable sort keeps each
    module's tests together), so a broken unit test fails the run in seconds, not after the faults."""
    tiers: dict[str, str] = {}
    for item in items:
        tier = next((t for t in TIERS if item.get_closest_marker(t)), None)
        if tier is None:
            tier = tier_of(item)
            item.add_marker(tier)
        tiers[item.nodeid] = tier
    items.sort(key=lambda item: RUN_ORDER.index(tiers[item.nodeid]))


# "i/n" (set by tests/tiers.py): run only every n-th of the selected tests, starting at the i-th, so one
# tier can run as n pytest processes side by side. Each fault test works on a database and a redis-server
# of its own, which is what makes that safe for them.
SHARD = "ORCH_TEST_SHARD"


class _Shard:
    """A plugin of its own, so that its collection hook can run after the marker selection (`-m`)."""

    def __init__(self, index: int, count: int) -> None:
        self.index, self.count = index, count

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        # Round robin over the selected tests in their run order: each shard gets about half of every file.
        kept = [item for n, item in enumerate(items) if n % self.count == self.index]
        dropped = [item for n, item in enumerate(items) if n % self.count != self.index]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_configure(config: pytest.Config) -> None:
    import os

    shard = os.environ.get(SHARD)
    if shard:
        index, count = (int(part) for part in shard.split("/"))
        config.pluginmanager.register(_Shard(index, count), "orch-shard")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    from orchestrator.store.migrate import upgrade

    with services.postgres_admin_url() as admin, services.fresh_database(admin) as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    with services.redis_url() as url:
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str, broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from orchestrator.settings import Settings

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
        # Small, so that the fair-dispatch test needs only a short backlog to fill the queue.
        queue_max_in_flight=20,
        projector_poll_seconds=0.2,
        # The `remote` embedder of taxonomy builds, on a port nothing listens on: builds that ask for it
        # show how an unreachable embedding service ends (tests/integration/test_taxonomy_build.py).
        embedder_url="http://127.0.0.1:1/embed",
        embedder_timeout_seconds=2.0,
    )


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    from orchestrator.store.engine import make_engine

    engine = make_engine(settings.database_url or "", pool_size=20)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def idle_client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    """The API on a queue of its own that no worker consumes, so the runs it submits stay pending."""
    from fastapi.testclient import TestClient

    from orchestrator.api.app import create_app

    idle = settings.model_copy(update={"queue_prefix": f"idle{uuid.uuid4().hex[:8]}"})
    with TestClient(create_app(idle, engine)) as client:
        yield client


@pytest.fixture(scope="session")
def service(engine: Engine, settings: Settings) -> RunService:
    from orchestrator.services import RunService

    return RunService(engine, settings)


@pytest.fixture(scope="session")
def app_client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    from fastapi.testclient import TestClient

    from orchestrator.api.app import create_app

    with TestClient(create_app(settings, engine)) as client:
        yield client


@contextmanager
def statements_run(engine: Engine) -> Iterator[list[str]]:
    """Every statement the engine sends while the block runs, as sent."""
    import sqlalchemy as sa

    statements: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


@contextmanager
def thread_hops() -> Iterator[list[str]]:
    """The name of every function handed to a worker thread while the block runs (what Starlette's and
    FastAPI's `run_in_threadpool` and anyio's `to_thread` send there), however the app was called."""
    import anyio.to_thread

    hops: list[str] = []
    original = anyio.to_thread.run_sync

    async def counted(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        called = getattr(func, "func", func)  # run_in_threadpool hands over a functools.partial
        hops.append(getattr(called, "__qualname__", None) or repr(called))
        return await original(func, *args, **kwargs)

    anyio.to_thread.run_sync = counted  # type: ignore[assignment]
    try:
        yield hops
    finally:
        anyio.to_thread.run_sync = original


@pytest.fixture()
def tenant() -> str:
    """Tests isolate by tenant instead of cleaning up: every test gets its own."""
    return f"tenant-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def make_key(engine: Engine) -> Callable[[str], str]:
    from orchestrator.store import keys

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

    def __init__(self, settings: Settings, engine: Engine, log_dir: Path) -> None:
        self.settings = settings
        self.engine = engine
        self.env = services.settings_env(settings)
        self.log_dir = log_dir
        self.roles: dict[str, services.RoleProcess] = {}

    def start(self, *roles: str) -> None:
        """Start the roles and return once each one is ready (see services.wait_ready)."""
        started = [services.RoleProcess(role, self.env, self.log_dir).start() for role in roles]
        self.roles.update((process.role, process) for process in started)
        services.wait_ready(started, self.engine, self.settings)

    def stop(self) -> None:
        services.stop_all(list(self.roles.values()))

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{proc.tail()}" for name, proc in self.roles.items())


@pytest.fixture(scope="session")
def system(settings: Settings, engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = System(settings, engine, tmp_path_factory.mktemp("logs"))
    try:
        running.start("relay", "project", "reconcile", "worker")
        yield running
    finally:
        running.stop()


# Set by tests/tiers.py. Once pytest has printed its summary, the tier's process ends at once with that
# exit status, running the atexit handlers (embedded servers stop there) but not the interpreter's
# teardown of every module. In CI an integration pytest that had passed all of its tests once died of
# SIGSEGV in that teardown, which no test exercises and a product process never reaches the same way
# (each role is its own process, stopped by a signal); faulthandler stays on, so a crash during the tests
# still fails the tier with its traceback.
EXIT_AFTER_SUMMARY = "ORCH_TEST_EXIT_AFTER_SUMMARY"
_EXIT_STATUS = pytest.StashKey[int]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Name the threads still alive as pytest ends (a daemon thread left running into interpreter shutdown
    is the usual way a process that passed every test still dies of a signal on its way out); then, in a
    tier, end the process (see EXIT_AFTER_SUMMARY)."""
    import atexit
    import os
    import sys
    import threading

    left = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if left:
        names = ", ".join(f"{t.name}{' (daemon)' if t.daemon else ''}" for t in left)
        print(f"\nthreads alive as pytest ends: {names}", file=sys.stderr)
    if os.environ.get(EXIT_AFTER_SUMMARY) == "1" and _EXIT_STATUS in config.stash:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash[_EXIT_STATUS])
