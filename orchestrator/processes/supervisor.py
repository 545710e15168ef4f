"""`orchestrator up`: the embedded servers plus one child process per role, stopped together."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console

from orchestrator.processes import embedded, stale
from orchestrator.settings import Settings
from orchestrator.store import keys
from orchestrator.store.engine import make_engine
from orchestrator.store.migrate import upgrade

ROLES = ("serve", "relay", "project", "reconcile", "worker")
DEV_TENANT = "dev"
KEY_FILE = "dev-api-key"
URL_FILE = "api-url"  # where `runs` commands look for the API of this data folder
QUICK_DEATH_SECONDS = 10.0  # a role that dies sooner than this after its start "died right away"
MAX_QUICK_DEATHS = 5


def _dev_key(settings: Settings) -> str:
    """The development key, created on first start and kept (0600) in the data directory."""
    path = Path(settings.data_dir) / KEY_FILE
    if path.exists():
        return path.read_text().strip()
    engine = make_engine(settings.database_url or "", pool_size=1)
    with engine.begin() as conn:
        key, _ = keys.create(conn, DEV_TENANT, name="development key (orchestrator up)")
    engine.dispose()
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def api_url(host: str, port: int) -> str:
    """Where clients reach an API bound to host:port (a wildcard address is reached on loopback)."""
    reach = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{reach}]:{port}" if ":" in reach else f"http://{reach}:{port}"


def port_problem(host: str, port: int) -> str | None:
    """Why the API could not listen on host:port, or None. Binds every address the API server would
    (asyncio binds each one getaddrinfo gives), with SO_REUSEADDR as it does, so a port left in
    TIME_WAIT by a previous run is not mistaken for a taken one."""
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve the API host {host!r}: {exc.strerror}"
    for family, kind, proto, _name, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                return (
                    f"port {port} on {host} is not available ({exc.strerror}); "
                    "stop whatever uses it or choose another with --port"
                )
    return None


@dataclass
class RestartPolicy:
    """When to restart a role that exited: at once after a long life, with a growing pause (1, 2, 4 ...
    s) after each death right after its start, and never after MAX_QUICK_DEATHS of those in a row."""

    quick_seconds: float = QUICK_DEATH_SECONDS
    max_quick_deaths: int = MAX_QUICK_DEATHS
    quick_deaths: int = 0

    def delay_after(self, lived_seconds: float) -> float | None:
        if lived_seconds >= self.quick_seconds:
            self.quick_deaths = 0
            return 0.0
        self.quick_deaths += 1
        if self.quick_deaths >= self.max_quick_deaths:
            return None
        return float(2 ** (self.quick_deaths - 1))


@dataclass
class _Child:
    role: str
    proc: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    restart_at: float | None = None
    policy: RestartPolicy = field(default_factory=RestartPolicy)


def _spawn(role: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Children log to stderr so that stdout carries only what `up` itself prints (the key).
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", role], env=env, stdout=sys.stderr, start_new_session=True
    )


def _wait_ready(url: str, children: dict[str, _Child], stop: _StopRequest, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.requested:
        if any(c.proc.poll() is not None for c in children.values()):
            return False
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def _supervise(children: dict[str, _Child], env: dict[str, str], stop: _StopRequest, console: Console) -> int:
    """Restart roles that exit, per their RestartPolicy, until a stop is asked for (0) or one gives up (1)."""
    while not stop.requested:
        now = time.monotonic()
        for child in children.values():
            exited = child.restart_at is None and child.proc.poll() is not None
            if exited and not _plan_restart(child, now, console):
                return 1
            if child.restart_at is not None and now >= child.restart_at:
                child.proc, child.started, child.restart_at = _spawn(child.role, env), now, None
        time.sleep(0.2)
    console.print("stopping ...")
    return 0


def _plan_restart(child: _Child, now: float, console: Console) -> bool:
    """Set when a child that exited starts again; False when its policy gives up on it."""
    lived = now - child.started
    delay = child.policy.delay_after(lived)
    code = child.proc.returncode
    if delay is None:
        console.print(
            f"[red]{child.role} died {child.policy.quick_deaths} times in a row within "
            f"{child.policy.quick_seconds:g}s of starting (last exit code {code}); giving up, "
            "see its log above[/red]"
        )
        return False
    console.print(
        f"[yellow]{child.role} exited ({code}) after {lived:.1f}s; restarting in {delay:g}s[/yellow]"
    )
    child.restart_at = now + delay
    return True


def _stop(children: dict[str, _Child], grace: float) -> None:
    procs = [c.proc for c in children.values()]
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(text)
    temporary.replace(path)


def _forget_url(path: Path, url: str) -> None:
    # Only our own record: a second `up` on the same folder may have written its URL since.
    with contextlib.suppress(OSError):
        if path.read_text().strip() == url:
            path.unlink()


class _StopRequest:
    """Set by SIGINT/SIGTERM from the very start, so a signal during start-up still shuts down cleanly."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.requested = True


def up(settings: Settings) -> int:
    stop = _StopRequest()
    console = Console(stderr=True, soft_wrap=True)
    data_dir = settings.data_dir.resolve()
    console.print(f"data folder: {data_dir}", markup=False, highlight=False)
    # Before anything starts: a taken port would otherwise show up as an API restarting forever.
    problem = port_problem(settings.host, settings.port)
    if problem:
        console.print(f"[red]orchestrator up: {problem}[/red]")
        return 1
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        resolved, services = embedded.resolve(settings)
    except stale.StaleServerError as exc:
        console.print(f"orchestrator up: {exc}", markup=False, highlight=False)
        return 1
    children: dict[str, _Child] = {}
    url = api_url(resolved.host, resolved.port)
    url_file = data_dir / URL_FILE
    try:
        upgrade(resolved.database_url or "")
        key = _dev_key(resolved)
        env = dict(os.environ, ORCH_HOST=resolved.host, ORCH_PORT=str(resolved.port))
        if stop.requested:
            return 0
        children.update({role: _Child(role, _spawn(role, env)) for role in ROLES})
        if not _wait_ready(url, children, stop):
            if not stop.requested:
                console.print("[red]the system did not become ready; see the logs above[/red]")
            return 0 if stop.requested else 1
        _write_atomically(url_file, url + "\n")
        console.print(f"API: {url}   (docs: {url}/docs)", highlight=False)
        console.print(f"Development API key (tenant '{DEV_TENANT}'):")
        print(key, flush=True)
        return _supervise(children, env, stop, console)
    finally:
        _forget_url(url_file, url)
        _stop(children, resolved.worker_shutdown_seconds + 5)
        services.stop()
