"""The system under test, started as an operator starts it: a fresh database on the machine's
PostgreSQL, its own queue prefix on the machine's Redis, and `python -m orchestrator.cli <role>`
processes (tests/services.py), all removed again at the end."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from sqlalchemy.engine import Engine

from orchestrator.settings import Settings
from tests import services
from tests.benchmarks.common import console, wait_for

# PostgreSQL 15 keeps a backend's counters in the backend until it flushes them: at most once a second
# while it works, and up to 10 s (PGSTAT_IDLE_INTERVAL) after it went idle. pg_stat_database read
# sooner than that misses the last commits of connections that have gone quiet.
STATS_SETTLE_SECONDS = 11.0


@dataclass(frozen=True)
class Servers:
    admin_url: str
    redis_url: str


@contextmanager
def servers() -> Iterator[Servers]:
    """The machine's PostgreSQL (superuser URL) and Redis, or embedded ones where they do not answer."""
    with services.postgres_admin_url() as admin, services.redis_url() as broker:
        yield Servers(admin, broker)


def bench_prefix(kind: str) -> str:
    return f"bench-{kind}-{uuid.uuid4().hex[:8]}"


def clean_redis(redis_url: str, prefix: str) -> None:
    """Delete every key carrying our prefix (queues, kombu bindings, counters); other users' keys stay."""
    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(match=f"*{prefix}*", count=1000):
            client.delete(key)
    finally:
        client.close()


class CommandProcess(services.RoleProcess):
    """Any command, logged and stopped like a role (so services.stop_all stops it with the roles)."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log_dir: Path) -> None:
        super().__init__(name, env, log_dir)
        self.argv = list(argv)

    def start(self) -> CommandProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self


@dataclass
class System:
    """Our roles against one fresh database; `api_url` is set when `serve` runs."""

    settings: Settings
    engine: Engine
    database_name: str
    processes: list[services.RoleProcess]
    log_dir: Path
    api_url: str | None = None

    def api_key(self, tenant: str) -> str:
        from orchestrator.store import keys

        with self.engine.begin() as conn:
            key, _ = keys.create(conn, tenant, "benchmark")
        return key


def bench_settings(database_url: str, redis_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Production defaults, except what a benchmark must pin: its own database and queues, the same two
    worker processes as the Celery baseline, and a rate limit out of the way (the default allows one key
    100 requests/s, and the benchmark's clients share one key)."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "data_dir": data_dir,
        "secret_key": f"bench-{uuid.uuid4().hex}-secret",
        "queue_prefix": bench_prefix("orch"),
        "worker_concurrency": 2,
        "rate_limit_per_second": 1_000_000.0,
        "rate_limit_burst": 1_000_000,
        "port": services.free_port(),
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def running(found: Servers, roles: Sequence[str], **overrides: Any) -> Iterator[System]:
    """A fresh, migrated database with `roles` running and ready; everything is removed afterwards
    (the role logs too, unless something failed: then their folder is kept and printed)."""
    from orchestrator.store.engine import make_engine
    from orchestrator.store.migrate import upgrade

    log_dir = Path(tempfile.mkdtemp(prefix="orch-bench-"))
    clean = False
    try:
        with ExitStack() as stack:
            database_url = stack.enter_context(services.fresh_database(found.admin_url))
            upgrade(database_url)
            settings = bench_settings(database_url, found.redis_url, log_dir / "data", **overrides)
            stack.callback(clean_redis, found.redis_url, settings.queue_prefix)
            engine = make_engine(database_url, pool_size=24)
            stack.callback(engine.dispose)
            env = services.settings_env(settings)
            started = [services.RoleProcess(role, env, log_dir).start() for role in roles]
            stack.callback(services.stop_all, started)
            services.wait_ready([p for p in started if p.role != "serve"], engine, settings)
            system = System(settings, engine, database_url.rsplit("/", 1)[1], started, log_dir)
            if "serve" in roles:
                system.api_url = f"http://127.0.0.1:{settings.port}"
                wait_for(lambda: _ready(system.api_url or ""), 120, "the API's /readyz", interval=0.2)
            yield system
            dead = [p.role for p in started if not p.alive()]
            if dead:
                console.print(f"[red]roles died during the benchmark: {', '.join(dead)}[/red]")
            clean = not dead
    finally:
        if clean:
            shutil.rmtree(log_dir, ignore_errors=True)
        else:
            console.print(f"[yellow]role logs kept in {log_dir}[/yellow]")


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def database_url_of(admin_url: str, name: str) -> str:
    return admin_url.partition("?")[0].rsplit("/", 1)[0] + f"/{name}"


def commit_counters(admin_url: str, database: str) -> tuple[int, int]:
    """(xact_commit, xact_rollback) of one database, read from another one so the read adds none."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = %s", (database,)
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def statement_counter(database_url: str) -> int | None:
    """Statements executed in this database so far, per pg_stat_statements; None when the server does not
    load it (it must be in shared_preload_libraries; creating the extension in our own database is all we
    may do, installing server packages is not)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        preload = str(conn.execute("SHOW shared_preload_libraries").fetchone() or [""])
        if "pg_stat_statements" not in preload:
            return None
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        row = conn.execute(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
    return int(row[0]) if row else None


def settle_stats() -> None:
    """Let every backend flush its counters (see STATS_SETTLE_SECONDS); a fixed wait, as nothing tells
    when an idle backend's timer has fired."""
    time.sleep(STATS_SETTLE_SECONDS)
