"""No log line carries a traceback, SQL text or an API key, whatever breaks.

Real role processes with their output captured go through a forced cancel (the pool process is
terminated on purpose), a PostgreSQL outage with runs in flight and deliveries arriving while it lasts,
and unhandled exceptions through real uvicorn; then every line they wrote is read.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from orchestrator.store import keys
from orchestrator.store.key_format import generate
from orchestrator.store.schema import outbox
from tests.faults.harness import FaultSystem, check_invariant
from tests.services import free_port, wait_until

MakeSystem = Callable[..., FaultSystem]
KEYISH = re.compile(r"orch_[0-9A-Za-z]{43}_[0-9A-Za-z]{6}")


def _problems(text: str, secrets: list[str]) -> list[str]:
    found = []
    for marker in ("Traceback", "[SQL:", "[parameters:"):
        if marker in text:
            found.append(marker)
    found += [f"key {k[:9]}..." for k in secrets if k in text or k[5:] in text]
    if KEYISH.search(text):
        found.append("something shaped like a key")
    return found


def _lines_with(path: Path, needle: str) -> list[str]:
    return [line for line in path.read_text(errors="replace").splitlines() if needle in line]


@contextmanager
def _database_refusing_connections(admin_url: str, database_url: str) -> Iterator[None]:
    """An outage of this test's database alone: new connections are refused and open ones are
    terminated, while the shared server keeps serving everyone else's databases."""
    name = database_url.rsplit("/", 1)[1].split("?", 1)[0]
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    try:
        yield
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')


def _all_published(engine: Engine, count: int) -> bool:
    with engine.connect() as conn:
        sent = conn.execute(
            sa.select(sa.func.count()).select_from(outbox).where(outbox.c.sent_at.is_not(None))
        ).scalar_one()
    return int(sent) >= count


def _start_raising_api(system: FaultSystem, leak: str, port: int) -> subprocess.Popen[bytes]:
    log = (system.log_dir / f"raising-api-{uuid.uuid4().hex[:6]}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "tests.faults.raising_api"],
        env={**system.env, "ORCH_PORT": str(port), "LEAK_PROBE": leak},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def test_no_traceback_sql_or_key_in_any_log(
    make_system: MakeSystem, admin_url: str, fault_db: str, tenant: str
) -> None:
    port = free_port()
    # Two pool processes at every scale: the outage below is staged on both being busy with runs in flight,
    # so that the queued deliveries are taken only once a run's writes gave up.
    system = make_system(
        port=port, cancel_grace_seconds=2.0, dispatch_timeout_seconds=2.0, worker_concurrency=2
    )
    with system.engine.begin() as conn:
        key, _ = keys.create(conn, tenant, "log hygiene")
    for role in ("relay", "project", "reconcile"):
        system.start(role)
    api = _start_raising_api(system, key, port)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}, timeout=10)
    try:
        # Unhandled exceptions through real uvicorn: a 500 JSON answer and one line.
        wait_until(lambda: _ready(client), timeout=30, message="API up")
        for path in ("/boom", "/boom-async"):
            response = client.get(path)
            assert response.status_code == 500
            assert response.json() == {"detail": "internal error", "error_code": "internal_error"}

        # A PostgreSQL outage with runs in flight (both pool processes busy, their writes failing)
        # and deliveries arriving while it lasts (published before, taken once a process is free).
        worker = system.start("worker")
        running = system.submit(tenant, 2, duration=8, steps=8)
        wait_until(
            lambda: all("RunStarted" in system.event_types(r) for r in running),
            timeout=60,
            message="runs in flight",
        )
        waiting = system.submit(tenant, 3, duration=0.2)
        wait_until(lambda: _all_published(system.engine, 5), timeout=30, message="deliveries queued")
        system.engine.dispose()
        with _database_refusing_connections(admin_url, fault_db):
            assert client.get("/v1/runs").status_code == 503
            # A delivery is taken only once a run in flight gave up its writes, so both happened.
            wait_until(
                lambda: _lines_with(worker.log_path, "attempt.start_failed"),
                timeout=90,
                message="a delivery refused while the database is down",
            )
        system.engine.dispose()

        # A forced cancel: the job ignores the request, and its pool process is terminated.
        stubborn = system.submit(tenant, 1, duration=60, uninterruptible=True)[0]
        wait_until(lambda: "RunStarted" in system.event_types(stubborn), timeout=60, message="run started")
        system.service.cancel(tenant, stubborn)
        wait_until(lambda: "RunCanceled" in system.event_types(stubborn), timeout=30, message="forced cancel")
        wait_until(
            lambda: _lines_with(worker.log_path, "WorkerLostError"),
            timeout=30,
            message="the terminated pool process reported",
        )

        # Nothing was lost: lost attempts were retried, refused deliveries published again.
        system.wait_all_terminal(tenant, timeout=90)
        terminals = check_invariant(system, tenant, [*running, *waiting, stubborn])
        assert terminals == {"RunSucceeded": len(running) + len(waiting), "RunCanceled": 1}
    finally:
        client.close()
        api.terminate()
        api.wait(20)
        system.stop()

    logs = sorted(system.log_dir.glob("*.log"))
    assert len(logs) >= 5, logs
    for log_file in logs:
        text = log_file.read_text(errors="replace")
        assert not _problems(text, [key]), f"{log_file.name}: {_problems(text, [key])}\n{text[-3000:]}"
    # The events above were logged, as one JSON line each.
    started_failed = _lines_with(worker.log_path, "attempt.start_failed")
    assert all(json.loads(line)["error_code"] == "service_unavailable" for line in started_failed)
    # A run in flight whose final write outlasted its retries fails its task: Celery reports that.
    task_failures = [json.loads(line) for line in _lines_with(worker.log_path, '"celery.app.trace"')]
    assert any(entry.get("error_type") for entry in task_failures), task_failures
    # Celery's setup did not take over the worker's logging: our own info lines are still there.
    ended = [json.loads(line) for line in _lines_with(worker.log_path, "attempt.ended")]
    assert {entry["run_id"] for entry in ended} >= {str(r) for r in waiting}
    lost = [json.loads(line) for line in _lines_with(worker.log_path, "WorkerLostError")]
    assert any(entry.get("error_type") == "WorkerLostError" for entry in lost), lost
    api_log = next(system.log_dir.glob("raising-api-*.log"))
    unhandled = [json.loads(line) for line in _lines_with(api_log, "api.unhandled")]
    assert sorted(entry["error_type"] for entry in unhandled) == ["LookupError", "RuntimeError"]
    # The exceptions stopped at our middleware: uvicorn never saw one to report.
    assert not _lines_with(api_log, "Exception in ASGI application")


_SCRIPT = """
import logging, structlog
from sqlalchemy.exc import OperationalError
from orchestrator import log
log.configure("INFO")
key = {key!r}
try:
    raise OperationalError("SELECT pg_advisory_xact_lock(%(k)s)", {{"k": key}}, Exception("gone"))
except OperationalError as exc:
    logging.getLogger("celery.app.trace").error("Task raised unexpected: %s", exc, exc_info=True)
    structlog.get_logger("worker").exception("job.crashed", detail=str(exc))
    structlog.get_logger("worker").error("with.key", token=key, nested={{"k": [key]}})
raise RuntimeError("uncaught " + key)
"""


def _run_script(key: str, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(key=key)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout + done.stderr


def test_the_formatter_keeps_exceptions_sql_and_keys_out() -> None:
    key = generate()
    text = _run_script(key, ORCH_LOG_TRACEBACKS="false")
    assert not _problems(text, [key]), text
    entries = [json.loads(line) for line in text.splitlines()]
    assert [e["event"] for e in entries] == [
        "Task raised unexpected: (builtins.Exception) gone\n[SQL elided]",
        "job.crashed",
        "with.key",
        "uncaught exception",
    ]
    assert [e.get("error_type") for e in entries] == [
        "OperationalError",
        "OperationalError",
        None,
        "RuntimeError",
    ]
    assert entries[2]["token"] == "orch_<redacted>" and entries[2]["nested"] == {"k": ["orch_<redacted>"]}
    # Locally, tracebacks may be asked for.
    assert "Traceback" in _run_script(key, ORCH_LOG_TRACEBACKS="true")
