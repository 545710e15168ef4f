"""The API's house rules: docs that work offline and offer Authorize, stream settings that `create_app`
takes, one event schema for the list and the streams, and a start-up that refuses a placeholder secret.

Streams are read over real HTTP from an in-thread uvicorn (the test client buffers whole bodies, so it
cannot hold a stream open); the runs go to a queue no worker consumes, so they stay pending until canceled.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from orchestrator.settings import Settings
from orchestrator.store import keys
from tests.conftest import System, settings_env
from tests.services import free_port, serving, sse_frames, wait_until

pytestmark = pytest.mark.usefixtures("system")

HEARTBEAT = 0.2


@pytest.fixture(scope="module")
def served(settings: Settings, engine: Engine, system: System) -> Iterator[str]:
    tuned = settings.model_copy(
        update={
            "queue_prefix": f"idle{uuid.uuid4().hex[:8]}",
            "sse_per_key_streams": 1,
            "sse_heartbeat_seconds": HEARTBEAT,
        }
    )
    with serving(tuned, engine) as url:
        yield url


@pytest.fixture()
def key(make_key: Callable[[str], str], tenant: str) -> str:
    return make_key(tenant)


# --- /docs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_everything_from_the_app_itself(app_client: TestClient, page: str) -> None:
    response = app_client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "http" not in html.lower() and "//" not in re.sub(r"<!--.*?-->", "", html, flags=re.S)
    referenced = re.findall(r'(?:src|href|spec-url)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
    scripts = [url for url in referenced if url.endswith(".js")]
    assert scripts and "/openapi.json" in referenced
    if page == "/docs":
        assert any(url.endswith(".css") for url in referenced)
    for url in referenced:
        assert url.startswith("/"), url
        asset = app_client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url  # the real file, not an error page
    for url in scripts:
        assert "javascript" in app_client.get(url).headers["content-type"], url


def test_openapi_offers_authorize_for_every_authenticated_operation(app_client: TestClient) -> None:
    document = app_client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert {"type": "http", "scheme": "bearer"}.items() <= schemes["bearer"].items()
    assert {"type": "apiKey", "in": "header", "name": "X-API-Key"}.items() <= schemes["apiKeyHeader"].items()
    assert {"type": "apiKey", "in": "cookie", "name": "vai_token"}.items() <= schemes["apiKeyCookie"].items()
    operations = [
        (f"{method.upper()} {path}", operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]
    public = {"GET /healthz", "GET /readyz"}  # probes answer without a key; every other operation needs one
    assert public < {name for name, _ in operations}
    any_scheme: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKeyHeader": []}, {"apiKeyCookie": []}]
    for name, operation in operations:
        expected = None if name in public else any_scheme
        assert operation.get("security") == expected, name
        header_names = {p["name"].lower() for p in operation.get("parameters", []) if p["in"] != "query"}
        assert not header_names & {"authorization", "x-api-key", "vai_token"}, name  # schemes, not params


def test_each_way_of_presenting_a_key_still_works_and_a_bad_authorization_header_decides(
    app_client: TestClient, make_key: Callable[[str], str], engine: Engine, tenant: str
) -> None:
    key = make_key(tenant)
    for presented in (
        {"Authorization": f"Bearer {key}"},
        {"authorization": f"bearer   {key} "},
        {"X-API-Key": key},
    ):
        assert app_client.get("/v1/runs", headers=presented).status_code == 200, presented
    app_client.cookies.set("vai_token", key)
    try:
        assert app_client.get("/v1/runs").status_code == 200
        # An Authorization header that is not a bearer key is refused, not replaced by the cookie or header.
        refused = app_client.get("/v1/runs", headers={"Authorization": "Basic abc", "X-API-Key": key})
    finally:
        app_client.cookies.clear()
    with engine.begin() as conn:
        revoked_key, record = keys.create(conn, tenant, "revoked")
        assert keys.revoke(conn, str(record.id)) == 1
    bodies = {
        refused.content,
        app_client.get("/v1/runs").content,
        app_client.get("/v1/runs", headers={"Authorization": "Bearer"}).content,
        app_client.get("/v1/runs", headers={"X-API-Key": "orch_unknown"}).content,
        app_client.get("/v1/runs", headers={"X-API-Key": revoked_key}).content,
    }
    assert refused.status_code == 401
    assert len(bodies) == 1 and json.loads(bodies.pop())["error_code"] == "unauthenticated"


# --- streams: settings from create_app, one event schema -----------------------------------------------


def test_create_app_settings_shape_the_streams(served: str, key: str) -> None:
    with httpx.Client(base_url=served, headers={"X-API-Key": key}, timeout=httpx.Timeout(10, read=5)) as http:
        run = http.post("/v1/runs", json={"kind": "sleep", "params": {"duration": 1}}).json()
        with http.stream("GET", f"/v1/runs/{run['id']}/stream") as response:
            frames = sse_frames(response.iter_lines())
            assert next(frames)["event"] == "RunCreated"
            # sse_per_key_streams=1 came in through create_app: the key's second stream is refused.
            second = http.get(f"/v1/runs/{run['id']}/stream")
            assert second.status_code == 429 and second.json()["error_code"] == "too_many_streams"
            started = time.monotonic()
            assert "comment" in next(frames) and "comment" in next(frames)
            assert time.monotonic() - started < 10 * HEARTBEAT  # the default would be 15 s
        wait_until(lambda: _opens(http, f"/v1/runs/{run['id']}/stream"), timeout=5, message="the slot back")
        assert http.post(f"/v1/runs/{run['id']}/cancel").status_code == 200


def _opens(http: httpx.Client, path: str) -> bool:
    with http.stream("GET", path) as response:
        return response.status_code == 200


def test_a_streamed_event_is_the_listed_event(served: str, key: str) -> None:
    with httpx.Client(base_url=served, headers={"X-API-Key": key}, timeout=httpx.Timeout(10, read=5)) as http:
        run = http.post("/v1/runs", json={"kind": "sleep", "params": {"duration": 1}, "labels": {"é": "ü"}})
        run_id = run.json()["id"]
        assert http.post(f"/v1/runs/{run_id}/cancel").status_code == 200  # a pending run ends at once
        listed = http.get(f"/v1/runs/{run_id}/events").json()["data"]
        assert [e["type"] for e in listed][-1] == "RunCanceled"
        for path in (f"/v1/runs/{run_id}/stream", f"/api/v1/data-products/runs/{run_id}/events"):
            with http.stream("GET", path) as response:  # ends after the terminal event
                frames = [f for f in sse_frames(response.iter_lines()) if "id" in f]
            streamed = [json.loads(f["data"]) for f in frames]
            assert streamed == listed, path
            assert [f["id"] for f in frames] == [str(e["position"]) for e in listed]
            assert [f["event"] for f in frames] == [e["type"] for e in listed]
        assert set(listed[0]) == {"position", "version", "type", "data", "recorded_at"}


# --- start-up refuses a placeholder secret ------------------------------------------------------------


def test_serve_refuses_a_placeholder_secret_before_it_starts(settings: Settings) -> None:
    env = {**settings_env(settings), "ORCH_SECRET_KEY": "change-me", "ORCH_PORT": str(free_port())}
    started = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert "ORCH_SECRET_KEY is a placeholder" in started.stderr
    assert "change-me" not in started.stderr and (settings.database_url or "") not in started.stderr
