"""Other systems to compare with, each in a virtualenv of its own under `.bench-venvs/` (git-ignored):
built on first use with `python3 -m venv` and pip, and skipped with a message when pip cannot install
them. Their small driver scripts (drivers/) run as subprocesses and print one JSON line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.benchmarks.common import console

ROOT = Path(__file__).resolve().parents[2]
VENVS = ROOT / ".bench-venvs"
DRIVERS = Path(__file__).resolve().parent / "drivers"


def ensure(name: str, packages: list[str], module: str, timeout: float = 900) -> Path | None:
    """The venv's python, with `packages` installed and `module` importable; None (said why) if not."""
    venv = VENVS / name
    python = venv / "bin" / "python"

    def importable() -> bool:
        probe = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, timeout=120)
        return probe.returncode == 0

    if python.exists() and importable():
        return python
    console.print(f"[dim]building {venv} ({' '.join(packages)}); this takes a few minutes once[/dim]")
    VENVS.mkdir(exist_ok=True)
    log = VENVS / f"{name}.install.log"
    try:
        with log.open("w") as out:
            subprocess.run(["python3", "-m", "venv", str(venv)], check=True, stdout=out, stderr=out)
            subprocess.run(
                [str(python), "-m", "pip", "install", "--disable-pip-version-check", *packages],
                check=True,
                stdout=out,
                stderr=out,
                timeout=timeout,
            )
    except (OSError, subprocess.SubprocessError) as exc:
        console.print(f"[yellow]skipping {name}: could not install {packages} ({exc}); see {log}[/yellow]")
        return None
    if not importable():
        console.print(f"[yellow]skipping {name}: installed, but `import {module}` fails; see {log}[/yellow]")
        return None
    return python


def run_driver(python: Path, script: str, args: list[str], timeout: float) -> dict[str, Any]:
    """Run drivers/<script> in its venv; its last stdout line is its JSON result."""
    done = subprocess.run(
        [str(python), str(DRIVERS / script), *args], capture_output=True, text=True, timeout=timeout
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.splitlines()[-15:])
        raise RuntimeError(f"{script} exited {done.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result
