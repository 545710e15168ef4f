"""`orchestrator up` as a newcomer runs it: embedded PostgreSQL and Redis, HTTP only, then a restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.services import free_port, wait_until

pytestmark = pytest.mark.slow


class Up:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self.url = f"http://127.0.0.1:{port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
        self.proc: subprocess.Popen[str] | None = None
        self.log = data_dir.parent / "up.log"

    def start(self) -> str:
        """Start and return the development key (the last line `up` prints on stdout)."""
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestrator.cli",
                "up",
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(self.port),
            ],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=self.log.open("a"),
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line.startswith("orch_"), f"no key printed; log:\n{self.log.read_text()[-3000:]}"
        return line

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)


@pytest.fixture()
def up(tmp_path: Path) -> Iterator[Up]:
    system = Up(tmp_path / "data", free_port())
    yield system
    system.stop()


def test_up_runs_200_sleep_runs_and_keeps_them_across_a_restart(up: Up) -> None:
    key = up.start()
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=up.url, headers=headers, timeout=30) as client:
        started = time.monotonic()
        ids = []
        for _ in range(200):
            response = client.post("/v1/runs", json={"kind": "sleep", "params": {"duration": 0}})
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])

        def all_succeeded() -> bool:
            statuses = []
            cursor = None
            while True:
                params: dict[str, str | int] = {"limit": 100, "status": "succeeded"}
                if cursor:
                    params["cursor"] = cursor
                page = client.get("/v1/runs", params=params).json()
                statuses.extend(r["id"] for r in page["data"])
                cursor = page["next_cursor"]
                if not cursor:
                    return set(statuses) >= set(ids)

        wait_until(all_succeeded, timeout=60, interval=0.25, message="200 runs to succeed")
        elapsed = time.monotonic() - started
        print(f"200 sleep runs submitted and succeeded in {elapsed:.1f}s")
        for run_id in ids[::20]:
            events = client.get(f"/v1/runs/{run_id}/events").json()["data"]
            assert [(e["version"], e["type"]) for e in events] == [
                (1, "RunCreated"),
                (2, "RunStarted"),
                (3, "RunSucceeded"),
            ]
        before = {run_id: client.get(f"/v1/runs/{run_id}/events").json() for run_id in ids[:10]}
    watch = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "runs",
            "watch",
            ids[0],
            "--url",
            up.url,
            "--key",
            key,
            "--json",
        ],
        env=up.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert watch.returncode == 0, watch.stderr
    assert [json.loads(line)["type"] for line in watch.stdout.splitlines()] == [
        "RunCreated",
        "RunStarted",
        "RunSucceeded",
    ]
    up.stop()

    assert up.start() == key, "the development key survives a restart"
    with httpx.Client(base_url=up.url, headers=headers, timeout=30) as client:
        for run_id, events in before.items():
            assert client.get(f"/v1/runs/{run_id}/events").json() == events
        total = 0
        cursor = None
        while True:
            params: dict[str, str | int] = {"limit": 100}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/v1/runs", params=params).json()
            total += len(page["data"])
            assert all(r["status"] == "succeeded" for r in page["data"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert total == 200


def test_keys_create_prints_the_key_alone_on_the_last_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "keys",
            "create",
            "--tenant",
            "acme",
            "--data-dir",
            str(tmp_path / "d"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[-1].startswith("orch_")
