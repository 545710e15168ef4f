"""`orchestrator up` started as a user starts it, and the processes it leaves behind found and killed."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil


def user_env(**settings: str) -> dict[str, str]:
    """The test's environment without its ORCH_ settings, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env.update({f"ORCH_{name.upper()}": value for name, value in settings.items()})
    return env


def up_command(data_dir: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "orchestrator.cli", "up", "--data-dir", str(data_dir), "--port", str(port)]


class Up:
    def __init__(self, data_dir: Path, port: int, env: dict[str, str] | None = None) -> None:
        self.data_dir, self.port = data_dir, port
        self.url = f"http://127.0.0.1:{port}"
        self.env = env or user_env()
        self.proc: subprocess.Popen[str] | None = None
        self.log = data_dir.parent / "up.log"

    def start(self) -> str:
        """Start and return the development key (the last line `up` prints on stdout)."""
        self.proc = subprocess.Popen(
            up_command(self.data_dir, self.port),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=self.log.open("a"),
            text=True,
        )
        return self.read_key(self.proc)

    def read_key(self, proc: subprocess.Popen[str], timeout: float = 150.0) -> str:
        """The key line, waited for with a bound: a parent that outlives a failed `up` keeps the pipe
        open, and a plain readline would then wait for ever."""
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        while not select.select([proc.stdout], [], [], 0.5)[0]:
            assert time.monotonic() < deadline, f"no key within {timeout:g}s; log:\n{self.tail()}"
        line = proc.stdout.readline().strip()
        assert line.startswith("orch_"), f"no key printed; log:\n{self.tail()}"
        return line

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)


def processes_of(root_pid: int, data_dir: Path) -> list[psutil.Process]:
    """`up` and everything it started: its children at any depth, and the embedded servers, which
    daemonize away from it but keep their command line or working directory in the data folder."""
    found: dict[int, psutil.Process] = {}
    try:
        root = psutil.Process(root_pid)
        found.update({p.pid: p for p in (root, *root.children(recursive=True))})
    except psutil.NoSuchProcess:
        pass
    folder = str(data_dir.resolve())
    for process in psutil.process_iter():
        try:
            if folder in " ".join(process.cmdline()) or process.cwd().startswith(folder):
                found[process.pid] = process
        except psutil.Error:
            continue
    return list(found.values())


def kill_all(processes: list[psutil.Process]) -> None:
    """SIGKILL them as one crash: all are stopped first, so that none sees another die and reacts (a
    postmaster restarting its children, `up` restarting a role)."""
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGSTOP)
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
