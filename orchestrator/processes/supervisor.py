"""`orchestrator up`: the embedded servers plus one child process per role, stopped together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console

from orchestrator.processes import embedded
from orchestrator.settings import Settings
from orchestrator.store import keys
from orchestrator.store.engine import make_engine
from orchestrator.store.migrate import upgrade

ROLES = ("serve", "relay", "project", "reconcile", "worker")
DEV_TENANT = "dev"


def _dev_key(settings: Settings) -> str:
    """The development key, created on first start and kept (0600) in the data directory."""
    path = Path(settings.data_dir) / "dev-api-key"
    if path.exists():
        return path.read_text().strip()
    engine = make_engine(settings.database_url or "", pool_size=1)
    with engine.begin() as conn:
        key, _ = keys.create(conn, DEV_TENANT, name="development key (orchestrator up)")
    engine.dispose()
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def _spawn(role: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Children log to stderr so that stdout carries only what `up` itself prints (the key).
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", role], env=env, stdout=sys.stderr, start_new_session=True
    )


def _wait_ready(
    url: str, children: dict[str, subprocess.Popen[bytes]], stop: _StopRequest, timeout: float = 60.0
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.requested:
        if any(p.poll() is not None for p in children.values()):
            return False
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def _stop(children: dict[str, subprocess.Popen[bytes]], grace: float) -> None:
    for proc in children.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in children.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


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
    console = Console(stderr=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]orchestrator up[/bold]: data in {settings.data_dir.resolve()}")
    resolved, services = embedded.resolve(settings)
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        upgrade(resolved.database_url or "")
        key = _dev_key(resolved)
        env = dict(os.environ, ORCH_HOST=resolved.host, ORCH_PORT=str(resolved.port))
        if stop.requested:
            return 0
        children.update({role: _spawn(role, env) for role in ROLES})
        url = f"http://{resolved.host}:{resolved.port}"
        if not _wait_ready(url, children, stop):
            if not stop.requested:
                console.print("[red]the system did not become ready; see the logs above[/red]")
            return 0 if stop.requested else 1
        console.print(f"API: {url}   (docs: {url}/docs)")
        console.print(f"Development API key (tenant '{DEV_TENANT}'):")
        print(key, flush=True)
        while not stop.requested:
            dead = [role for role, proc in children.items() if proc.poll() is not None]
            for role in dead:
                console.print(f"[yellow]{role} exited ({children[role].returncode}); restarting[/yellow]")
                children[role] = _spawn(role, env)
            time.sleep(0.5)
        console.print("stopping ...")
        return 0
    finally:
        _stop(children, resolved.worker_shutdown_seconds + 5)
        services.stop()
