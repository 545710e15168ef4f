"""Keys stored only as digests (S3), mass assignment refused (S5), and resource limits (S6)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from orchestrator.api.app import create_app
from orchestrator.settings import Settings
from tests.conftest import System
from tests.services import settings_env

pytestmark = pytest.mark.usefixtures("system")


def _all_table_text(engine: Engine) -> str:
    with engine.connect() as conn:
        tables = (
            conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
            .scalars()
            .all()
        )
        return "\n".join(
            row
            for table in tables
            for row in conn.execute(sa.text(f'SELECT t::text FROM "{table}" t')).scalars()
        )


def test_created_keys_appear_nowhere(
    settings: Settings,
    engine: Engine,
    app_client: TestClient,
    system: System,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    tenant = f"keys-{uuid.uuid4().hex[:8]}"
    env = settings_env(settings)
    created = []
    cli_output = ""
    # Through the CLI, as an operator does: two at once, since each pays an interpreter start-up.
    command = [sys.executable, "-m", "orchestrator.cli", "keys", "create", "--tenant", tenant, "--name"]
    operators = [
        subprocess.Popen(
            [*command, f"k{n}"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for n in range(2)
    ]
    for operator in operators:
        out, err = operator.communicate(timeout=60)
        assert operator.returncode == 0, err
        *before, key = out.strip().splitlines()
        created.append(key)
        cli_output += "\n".join([*before, err])  # the key belongs on its own last line, nowhere else
    from orchestrator.store import keys

    with engine.begin() as conn:
        created += [keys.create(conn, tenant)[0] for _ in range(98)]
    assert len(set(created)) == 100
    for key in created[:10]:  # use them, bad variants included, so that logs had the chance to see them
        app_client.post("/v1/runs", json={"kind": "sleep"}, headers={"Authorization": f"Bearer {key}"})
        app_client.get("/v1/runs", headers={"X-API-Key": key + "x"})
    time.sleep(0.5)
    haystack = _all_table_text(engine) + capfd.readouterr().err + system.logs() + cli_output
    for log_file in system.log_dir.glob("*.log"):
        haystack += log_file.read_text(errors="replace")
    leaked = [k for k in created if k in haystack or k[5:] in haystack]
    assert not leaked, f"{len(leaked)} keys found in tables, events or logs"


@pytest.mark.parametrize("field", ["tenant_id", "status", "id", "created_at", "attempt", "error"])
def test_mass_assignment_is_refused(app_client: TestClient, auth: dict[str, str], field: str) -> None:
    bodies: dict[str, dict[str, object]] = {
        "/v1/runs": {"kind": "sleep"},
        "/api/v1/data-products/runs": {"context": {"duration": 0}, "taskName": "sleep"},
    }
    for path, body in bodies.items():
        response = app_client.post(path, json={**body, field: "x"}, headers=auth)
        assert response.status_code == 422, (path, field, response.text)
        assert field in str(response.json()["detail"])
    taxonomy = {"tenant_id": "t", "field_id": "f", "source_type": "s", "source_id": "", field: "x"}
    if field != "tenant_id":
        assert app_client.post("/v1/taxonomy/runs", json=taxonomy, headers=auth).status_code == 422
    listed = app_client.post("/v1/list-jobs", json={field: "x"}, headers=auth)
    assert listed.status_code == 400 and listed.json()["status"][0]["code"] == "INVALID_ARGUMENT"


def test_deeply_nested_json_is_refused_fast(app_client: TestClient, auth: dict[str, str]) -> None:
    body = '{"kind": "sleep", "params": ' + "[" * 10_000 + "]" * 10_000 + "}"
    started = time.monotonic()
    response = app_client.post("/v1/runs", content=body, headers={**auth, "Content-Type": "application/json"})
    elapsed = time.monotonic() - started
    assert response.status_code == 422
    assert elapsed < 0.5


@pytest.mark.parametrize(
    "content_type", ["Application/JSON", "text/plain", "application/json; charset=utf-8"]
)
def test_the_depth_cap_holds_whatever_the_content_type(
    app_client: TestClient, auth: dict[str, str], content_type: str
) -> None:
    body = '{"kind": "workflow", "params": {"x": ' + "[" * 300 + "]" * 300 + "}}"
    response = app_client.post("/v1/runs", content=body, headers={**auth, "Content-Type": content_type})
    assert response.status_code == 422, response.text


def test_oversized_batches_are_refused(app_client: TestClient, auth: dict[str, str]) -> None:
    labels = {f"k{i}": "v" for i in range(10_001)}
    assert (
        app_client.post("/v1/runs", json={"kind": "sleep", "labels": labels}, headers=auth).status_code == 422
    )


@pytest.mark.parametrize("limit", ["0", "-1", "101", "1000000000", "x"])
def test_page_limits_are_bounded(app_client: TestClient, auth: dict[str, str], limit: str) -> None:
    for path in (
        "/v1/runs",
        "/api/v1/data-products/runs",
        "/api/v1/task-runs",
        "/v1/taxonomy/runs?tenant_id=t&",
    ):
        sep = "" if path.endswith("&") else "?"
        response = app_client.get(f"{path}{sep}limit={limit}", headers=auth)
        assert response.status_code == 422, (path, response.text)


def test_rate_limit_answers_429_with_retry_after(
    settings: Settings, engine: Engine, make_key: Callable[[str], str], tenant: str
) -> None:
    limited = settings.model_copy(update={"rate_limit_per_second": 1.0, "rate_limit_burst": 5})
    key, other = make_key(tenant), make_key(f"{tenant}-b")
    with TestClient(create_app(limited, engine)) as client:
        codes = [client.get("/v1/runs", headers={"X-API-Key": key}).status_code for _ in range(8)]
        assert codes[:5] == [200] * 5 and codes[5:] == [429] * 3
        refused = client.get("/v1/runs", headers={"X-API-Key": key})
        assert refused.headers["Retry-After"] == "1"
        assert refused.json() == {"detail": "rate limit exceeded, retry later", "error_code": "rate_limited"}
        assert client.get("/v1/runs", headers={"X-API-Key": other}).status_code == 200, "limits are per key"
