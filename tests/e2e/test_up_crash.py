"""`orchestrator up` coming back after a crash of its whole process tree, embedded servers included.

The first `up` runs under a stand-in for a container's PID 1 that never reaps: the processes the crash
kills stay zombies, pids that exist but serve nothing, which is what made `up` attach to dead servers
(or PostgreSQL refuse to start) instead of starting new ones."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.system import Up, kill_all, processes_of, up_command, user_env
from tests.services import free_port, wait_until

pytestmark = pytest.mark.slow

# Becomes the subreaper of what it starts (Linux), so the orphaned servers are reparented to it, and
# then only sleeps: nothing it inherits is ever reaped until it is killed itself.
NO_REAPER = """
import ctypes, signal, subprocess, sys
PR_SET_CHILD_SUBREAPER = 36
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
subprocess.Popen(sys.argv[1:])
while True:
    signal.pause()
"""
# Short leases and sweeps so that the attempts the crash interrupted are recovered in seconds.
FAST_RECOVERY = {
    "lease_seconds": "4",
    "lease_renew_seconds": "1",
    "reconcile_interval_seconds": "1",
    "dispatch_timeout_seconds": "5",
}
RESTART_BOUND_SECONDS = 90
RECOVERY_BOUND_SECONDS = 120


@pytest.fixture()
def system(data_root: Path) -> Iterator[tuple[Up, subprocess.Popen[str]]]:
    up = Up(data_root / "data", free_port(), user_env(**FAST_RECOVERY))
    parent = subprocess.Popen(
        [sys.executable, "-c", NO_REAPER, *up_command(up.data_dir, up.port)],
        env=up.env,
        stdout=subprocess.PIPE,
        stderr=up.log.open("a"),
        text=True,
    )
    yield up, parent
    up.stop()
    kill_all(processes_of(parent.pid, up.data_dir))
    parent.wait(timeout=30)


def submit(client: httpx.Client, idempotency_key: str, duration: float) -> httpx.Response:
    return client.post(
        "/v1/runs",
        json={"kind": "sleep", "params": {"duration": duration, "steps": 2}},
        headers={"Idempotency-Key": idempotency_key},
    )


def statuses(client: httpx.Client) -> dict[str, str]:
    found: dict[str, str] = {}
    params: dict[str, str | int] = {"limit": 100}
    while True:
        page = client.get("/v1/runs", params=params).json()
        found.update({r["id"]: r["status"] for r in page["data"]})
        if not page["next_cursor"]:
            return found
        params["cursor"] = page["next_cursor"]


def test_up_restarts_after_its_whole_tree_is_sigkilled_and_finishes_every_acknowledged_run(
    system: tuple[Up, subprocess.Popen[str]],
) -> None:
    up, parent = system
    key = up.read_key(parent)
    headers = {"Authorization": f"Bearer {key}"}
    submissions = {f"crash-{uuid.uuid4().hex[:8]}-{i}": (0.0 if i % 3 else 2.0) for i in range(30)}
    acknowledged: dict[str, str] = {}
    with httpx.Client(base_url=up.url, headers=headers, timeout=30) as client:
        for idempotency_key, duration in submissions.items():
            response = submit(client, idempotency_key, duration)
            assert response.status_code == 201, response.text
            acknowledged[idempotency_key] = response.json()["id"]
        wait_until(
            lambda: "running" in statuses(client).values(),
            timeout=30,
            interval=0.1,
            message="a run in flight",
        )

    # The stand-in PID 1 has the servers as children too, reparented to it when they daemonized.
    [up_process] = [p for p in psutil.Process(parent.pid).children() if "up" in p.cmdline()]
    # Not the stand-in PID 1 (its command line names the folder too): it has to outlive the crash.
    victims = [p for p in processes_of(up_process.pid, up.data_dir) if p.pid != parent.pid]
    names = " ".join(" ".join(p.cmdline()) for p in victims)
    assert "postgres" in names and "redis-server" in names, names
    kill_all(victims)
    wait_until(
        lambda: all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in victims),
        timeout=10,
        message="every process of the first up dead",
    )
    postmaster = int((up.data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    assert psutil.Process(postmaster).status() == psutil.STATUS_ZOMBIE, "the crash left its server a zombie"

    started = time.monotonic()
    assert up.start() == key, "the same data folder, the same development key"
    restart_seconds = time.monotonic() - started
    print(f"up restarted after the crash in {restart_seconds:.1f}s")
    assert restart_seconds < RESTART_BOUND_SECONDS

    with httpx.Client(base_url=up.url, headers=headers, timeout=30) as client:
        ids = set(acknowledged.values())

        def all_succeeded() -> bool:
            current = statuses(client)
            assert ids <= set(current), "an acknowledged run is missing"
            return all(current[i] == "succeeded" for i in ids)

        wait_until(all_succeeded, timeout=RECOVERY_BOUND_SECONDS, interval=0.5, message="every run succeeded")
        print(f"every acknowledged run succeeded {time.monotonic() - started:.1f}s after the restart began")
        assert len(statuses(client)) == len(submissions), "no run was created twice"
        for idempotency_key, run_id in list(acknowledged.items())[:5]:
            retry = submit(client, idempotency_key, submissions[idempotency_key])
            assert (retry.status_code, retry.json()["id"]) == (200, run_id)

    # A second command on the folder attaches to the live servers, it does not take them for dead.
    listing = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "keys", "list", "--json", "--data-dir", str(up.data_dir)],
        env=up.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listing.returncode == 0, listing.stderr
    assert [k["tenant_id"] for k in json.loads(listing.stdout)] == ["dev"]
    assert httpx.get(f"{up.url}/readyz", timeout=10).status_code == 200
