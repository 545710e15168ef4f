"""The dashboard's files at /ui and the totals it shows (`GET /v1/runs:counts`), in process."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.integration.test_api import settle, submit
from tests.services import wait_until

pytestmark = pytest.mark.usefixtures("system")


def test_ui_files_are_served_with_a_strict_content_security_policy(app_client: TestClient) -> None:
    page = app_client.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and page.headers["x-content-type-options"] == "nosniff"
    # The page loads only its own files, by relative paths (so a proxy prefix keeps working).
    loaded = set(re.findall(r'(?:src|href)="([^"]+)"', page.text))
    assert loaded == {"dashboard.css", "dashboard.js", "favicon.svg"}
    # The page's module and its imports.
    for name in ("dashboard.js", "api.js", "stream.js", "runs.js", "activity.js", "charts.js"):
        script = app_client.get(f"/ui/{name}")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert "content-security-policy" in script.headers
        # Data reaches the page as text nodes only: nothing that parses markup.
        assert not {"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"} & set(
            re.findall(r"[A-Za-z.]+", script.text)
        ), name
    moved = app_client.get("/ui", follow_redirects=False)
    assert moved.status_code in (301, 307) and moved.headers["location"].endswith("/ui/")
    missing = app_client.get("/ui/nothing.js")
    assert missing.status_code == 404 and missing.json()["error_code"] == "not_found"


def test_counts_are_per_status_and_scoped_to_the_key(
    app_client: TestClient, auth: dict[str, str], make_key: Callable[[str], str], engine: Engine
) -> None:
    done = submit(app_client, auth, params={"duration": 0})
    other = submit(app_client, auth, kind="sleep", params={"duration": 60})
    assert app_client.post(f"/v1/runs/{other['id']}/cancel", headers=auth).status_code == 200
    stranger = {"X-API-Key": make_key("someone-else")}
    submit(app_client, stranger, params={"duration": 0})

    def counted() -> dict[str, object] | None:
        settle(engine)
        body: dict[str, object] = app_client.get("/v1/runs:counts", headers=auth).json()
        data = body["data"]
        assert isinstance(data, dict)
        return body if data["succeeded"] == 1 and data["canceled"] == 1 else None

    body = wait_until(counted, timeout=15, interval=0.2, message=f"run {done['id']} counted")
    assert body == {
        "data": {"pending": 0, "running": 0, "succeeded": 1, "failed": 0, "canceled": 1},
        "total": 2,
    }
    of_kind = app_client.get("/v1/runs:counts", params={"kind": "dataset_task"}, headers=auth).json()
    assert of_kind["total"] == 0
    assert app_client.get("/v1/runs:counts").status_code == 401
    bad = app_client.get("/v1/runs:counts", params={"kind": "x" * 65}, headers=auth)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "kind"]
