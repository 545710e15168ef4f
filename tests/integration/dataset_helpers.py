"""Features and dataset runs through the API, for the integration and fault tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from orchestrator.settings import Settings
from orchestrator.storage import Storage
from tests.services import wait_until

TERMINAL = ("succeeded", "failed", "canceled")


def people(count: int, bad_every: int = 0) -> bytes:
    """JSONL with an e-mail address and a phone number on every line; every `bad_every`th line broken."""
    rows = []
    for i in range(1, count + 1):
        if bad_every and i % bad_every == 0:
            rows.append(b"{not json %d\n" % i)
        else:
            rows.append(
                b'{"i": %d, "note": "write to user%d@example.com or call +1 555 010 %04d", "n": %d}\n'
                % (i, i, i % 10_000, i)
            )
    return b"".join(rows)


def put_file(settings: Settings, tenant: str, path: str, data: bytes) -> str:
    storage = Storage.from_settings(settings)
    url = storage.object_url(tenant, path)
    storage.write_stream(url, iter([data]))
    return url


def register(client: TestClient, auth: dict[str, str], url: str, name: str = "people") -> dict[str, Any]:
    answer = client.post("/v1/features", json={"name": name, "url": url}, headers=auth)
    assert answer.status_code == 201, answer.text
    feature: dict[str, Any] = answer.json()
    return feature


def start(client: TestClient, auth: dict[str, str], feature_id: str, **body: Any) -> str:
    answer = client.post(f"/v1/features/{feature_id}/runs", json={"task": "redact", **body}, headers=auth)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def wait_terminal(
    client: TestClient, auth: dict[str, str], run_id: str, timeout: float = 60
) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        run: dict[str, Any] = client.get(f"/v1/runs/{run_id}", headers=auth).json()
        return run if run["status"] in TERMINAL else None

    return wait_until(ended, timeout=timeout, interval=0.2, message=f"run {run_id} terminal")


def local_path(settings: Settings, tenant: str, path: str) -> Path:
    return Path(Storage.from_settings(settings).object_url(tenant, path).removeprefix("file://"))


def task_run(client: TestClient, auth: dict[str, str], run_id: str) -> dict[str, Any]:
    page = client.get("/api/v1/task-runs", params={"limit": 100}, headers=auth).json()
    found: dict[str, Any] = next(r for r in page["runs"] if r["run_id"] == run_id)
    return found
