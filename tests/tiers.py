"""`make test`: every tier in the time of the slowest stream, not of all of them added up.

The unit tier runs first, with services forbidden; it fails in seconds. Then three streams of pytest
processes run at once: the integration tier (one session database, broker and set of role processes);
half of the fault tier (every other test, `ORCH_TEST_SHARD`; each fault test works on a database and a
redis-server of its own); and the other half followed by e2e (`orchestrator up` on embedded servers).
They share no database, queue or process, and all of them spend most of their time waiting on the
processes they drive, which is why three streams fit on two cores; measured, the split puts about as much
time in each. The background streams' output is kept in files and printed once integration is done, so
the streams do not interleave.

Every tier must run tests: pytest's exit code 5 (nothing collected) fails the run like a failure does.
With arguments (`make test ARGS="-k cancel"`) there are no tiers: one pytest run gets them as they are.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.conftest import EXIT_AFTER_SUMMARY, SHARD
from tests.services import NO_SERVICES

# -X faulthandler keeps Python's crash report on past pytest's own session: a process that passes every
# test and then dies in interpreter shutdown (a native library's teardown, say) shows which thread died.
PYTEST = [sys.executable, "-X", "faulthandler", "-m", "pytest"]
FAULT_SHARDS = 2
COUNTED = ("passed", "failed", "errors", "error", "skipped")


def counts(output: str) -> dict[str, int]:
    """The counts of pytest's closing line (`3 failed, 120 passed, 2 skipped in 61.2s`)."""
    found: dict[str, int] = {}
    lines = [line for line in output.splitlines() if re.search(r"\b(passed|failed|error|errors)\b", line)]
    for number, word in re.findall(r"(\d+) (\w+)", lines[-1] if lines else ""):
        if word in COUNTED:
            key = "errors" if word == "error" else word
            found[key] = found.get(key, 0) + int(number)
    return found


def run_streamed(name: str, args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run one pytest, echoing its output as it comes; returns its exit code and output."""
    print(f"\n=== {name}: pytest {' '.join(args)}", flush=True)
    proc = subprocess.Popen(
        [*PYTEST, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line)
    return proc.wait(), "".join(lines)


def run_quietly(
    runs: list[tuple[str, list[str], dict[str, str]]], log_dir: Path
) -> list[tuple[str, int, str]]:
    """Run pytests one after another with their output kept in files; (name, exit code, output) each."""
    done = []
    for index, (name, args, env) in enumerate(runs):
        log_path = log_dir / f"{threading.get_ident()}-{index}.log"
        with log_path.open("w") as log:
            code = subprocess.call([*PYTEST, *args], env=env, stdout=log, stderr=subprocess.STDOUT)
        done.append((name, code, log_path.read_text(errors="replace")))
    return done


def main(argv: list[str]) -> int:
    if argv:
        return subprocess.call([*PYTEST, *argv])
    started = time.monotonic()
    results: list[tuple[str, int, str]] = []
    env = {**os.environ, EXIT_AFTER_SUMMARY: "1"}

    code, output = run_streamed("unit", ["-m", "unit"], {**env, NO_SERVICES: "1"})
    results.append(("unit", code, output))
    if code == 0:
        faults = [
            (f"faults {i}/{FAULT_SHARDS}", ["-m", "faults"], {**env, SHARD: f"{i}/{FAULT_SHARDS}"})
            for i in range(FAULT_SHARDS)
        ]
        # The shorter fault shard is followed by e2e: three streams of about equal length.
        background = [[faults[0]], [faults[1], ("e2e", ["-m", "e2e"], env)]]
        with (
            tempfile.TemporaryDirectory(prefix="orch-tiers-") as tmp,
            ThreadPoolExecutor(len(background)) as pool,
        ):
            pending = [pool.submit(run_quietly, runs, Path(tmp)) for runs in background]
            names = ", ".join(name for runs in background for name, _, _ in runs)
            print(f"\n=== running alongside: {names}; their output follows integration")
            code, output = run_streamed("integration", ["-m", "integration"], env)
            results.append(("integration", code, output))
            for finished in pending:
                for name, run_code, run_output in finished.result():
                    print(f"\n=== {name}: pytest")
                    sys.stdout.write(run_output)
                    results.append((name, run_code, run_output))

    total: dict[str, int] = {}
    print(f"\n=== tiers, {time.monotonic() - started:.0f}s in all")
    for name, code, output in results:
        found = counts(output)
        for key, value in found.items():
            total[key] = total.get(key, 0) + value
        verdict = "ok" if code == 0 else ("no tests ran" if code == 5 else f"exit code {code}")
        if code < 0:  # the process died of a signal after (or while) running its tests
            verdict = f"killed by {signal.Signals(-code).name}"
        print(f"{name}: {verdict} {found}")
    failed = next((code for _, code, _ in results if code != 0), 0)
    print(f"total: {total.get('passed', 0)} passed, {total.get('failed', 0) + total.get('errors', 0)} failed")
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
