"""Dataset-task runs end to end with a real worker: a redaction over a few thousand lines, bad lines under
and over the threshold, a cancel mid-run, the result route, and the surfaces' fields filled from the run."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from orchestrator.datasets.published import ALL_TASKS
from orchestrator.settings import Settings
from orchestrator.storage import bucket_name
from tests.integration.dataset_helpers import (
    local_path,
    people,
    put_file,
    register,
    start,
    task_run,
    wait_terminal,
)
from tests.services import wait_until

pytestmark = pytest.mark.usefixtures("system")


def test_a_redaction_run_writes_every_line_without_an_email_left(
    app_client: TestClient, auth: dict[str, str], settings: Settings, tenant: str
) -> None:
    lines = 3000
    feature = register(app_client, auth, put_file(settings, tenant, "in/people.jsonl", people(lines)))
    run_id = start(app_client, auth, feature["id"], context={"chunkLines": 400}, run_name="nightly")
    run = wait_terminal(app_client, auth, run_id)
    assert run["status"] == "succeeded", run
    result = run["result"]
    assert result["result_bucket"] == bucket_name(tenant) and result["result_file_path"]
    assert result["line_count"] == lines and result["bad_lines"] == 0 and result["errors_file_path"] is None

    answer = app_client.get(f"/v1/task-runs/{run_id}/result", headers=auth)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/x-ndjson")
    records = [json.loads(line) for line in answer.text.splitlines()]
    assert [r["i"] for r in records] == list(range(1, lines + 1)), "every line once, in order"
    assert "@" not in answer.text and "555 010" not in answer.text
    assert records[0]["note"] == "write to [REDACTED] or call [REDACTED]"
    on_disk = local_path(settings, tenant, result["result_file_path"])
    assert on_disk.read_text() == answer.text, "the route serves the file at the reported bucket/path"
    assert not local_path(settings, tenant, f"work/{run_id}").exists(), "parts removed"

    surface = task_run(app_client, auth, run_id)
    assert surface == {
        **surface,
        "run_name": "nightly",
        "task_id": str(ALL_TASKS["redact"].id),
        "task_name": "redact",
        "feature_id": feature["id"],
        "feature_name": "people",
        "status": "completed",
        "result_bucket": bucket_name(tenant),
        "result_file_path": result["result_file_path"],
        "line_count": lines,
        "fail_message": None,
    }
    assert surface["completed_at"] is not None
    events = app_client.get(f"/v1/runs/{run_id}/events", headers=auth).json()["data"]
    progress = [e["data"] for e in events if e["type"] == "ProgressReported"]
    assert [p["done"] for p in progress] == [*range(400, lines, 400), lines], "progress per chunk"
    assert progress[-1]["counts"]["line_count"] == lines


def test_the_data_products_route_runs_a_dataset_task_too(
    app_client: TestClient, auth: dict[str, str], settings: Settings, tenant: str
) -> None:
    feature = register(app_client, auth, put_file(settings, tenant, "in/p.jsonl", people(50)), name="small")
    body = {"taskName": "extract_fields", "context": {"featureId": feature["id"], "paths": {"id": "i"}}}
    created = app_client.post("/api/v1/data-products/runs", json=body, headers=auth)
    assert created.status_code == 200, created.text
    run_id = created.json()["id"]
    assert created.json()["taskId"] == str(ALL_TASKS["extract_fields"].id)
    assert wait_terminal(app_client, auth, run_id)["status"] == "succeeded"
    result = app_client.get(f"/v1/task-runs/{run_id}/result", headers=auth).text
    assert [json.loads(line) for line in result.splitlines()] == [{"id": i} for i in range(1, 51)]
    detail = app_client.get(f"/api/v1/data-products/runs/{run_id}", headers=auth).json()
    assert detail["outcome"]["rowCount"] == 50
    surface = task_run(app_client, auth, run_id)
    assert surface["feature_name"] == "small" and surface["run_name"] == "extract_fields on small"
    assert "extract_fields" in {
        t["name"] for t in app_client.get("/api/v1/data-products/tasks", headers=auth).json()["items"]
    }


def test_bad_lines_under_the_threshold_go_to_a_side_file_and_over_it_fail_the_run(
    app_client: TestClient, auth: dict[str, str], settings: Settings, tenant: str
) -> None:
    feature = register(
        app_client, auth, put_file(settings, tenant, "in/bad.jsonl", people(1000, bad_every=50))
    )
    tolerant = start(app_client, auth, feature["id"], context={"chunkLines": 100, "maxBadShare": 0.05})
    strict = start(app_client, auth, feature["id"], context={"chunkLines": 100, "maxBadShare": 0.01})
    run = wait_terminal(app_client, auth, tolerant)
    assert run["status"] == "succeeded", run
    assert (run["result"]["line_count"], run["result"]["bad_lines"]) == (980, 20)
    errors = local_path(settings, tenant, run["result"]["errors_file_path"]).read_text().splitlines()
    assert [json.loads(e)["line"] for e in errors] == list(range(50, 1001, 50))
    assert all("invalid JSON" in json.loads(e)["error"] for e in errors)
    assert len(app_client.get(f"/v1/task-runs/{tolerant}/result", headers=auth).text.splitlines()) == 980

    failed = wait_terminal(app_client, auth, strict)
    assert failed["status"] == "failed" and failed["error_code"] == "invalid_output"
    message = task_run(app_client, auth, strict)["fail_message"]
    assert (
        message.startswith("20 of 1000 lines could not be processed")
        and str(settings.data_dir) not in message
    )
    assert not local_path(settings, tenant, f"results/{strict}.jsonl").exists(), "no file at the final path"
    assert local_path(settings, tenant, f"results/{strict}.errors.jsonl").exists(), "the reason is kept"
    assert app_client.get(f"/v1/task-runs/{strict}/result", headers=auth).status_code == 404


def test_a_run_canceled_mid_way_leaves_no_file_at_the_final_path(
    app_client: TestClient, auth: dict[str, str], settings: Settings, tenant: str
) -> None:
    feature = register(app_client, auth, put_file(settings, tenant, "in/long.jsonl", people(20_000)))
    run_id = start(app_client, auth, feature["id"], context={"chunkLines": 10})

    def some_progress() -> bool:
        return bool(app_client.get(f"/v1/runs/{run_id}", headers=auth).json()["progress"]["done"])

    wait_until(some_progress, timeout=30, interval=0.05, message="first chunks done")
    canceled = app_client.post(f"/v1/runs/{run_id}/cancel", headers=auth)
    ended = app_client.get(f"/v1/runs/{run_id}", headers=auth).json()
    assert canceled.status_code == 200, (canceled.text, ended["status"], ended["error_code"], ended["error"])
    run = wait_terminal(app_client, auth, run_id)
    assert run["status"] == "canceled" and 0 < run["progress"]["done"] < 20_000
    assert not local_path(settings, tenant, f"results/{run_id}.jsonl").exists()
    assert not local_path(settings, tenant, f"work/{run_id}").exists(), "parts removed"
    surface = task_run(app_client, auth, run_id)
    assert (surface["status"], surface["fail_message"], surface["result_file_path"]) == (
        "failed",
        "canceled",
        None,
    )
    assert app_client.get(f"/v1/task-runs/{run_id}/result", headers=auth).status_code == 404


def test_results_and_features_are_the_tenants_own(
    app_client: TestClient,
    auth: dict[str, str],
    settings: Settings,
    tenant: str,
    make_key: Callable[[str], str],
) -> None:
    feature = register(app_client, auth, put_file(settings, tenant, "in/own.jsonl", people(10)))
    run_id = start(app_client, auth, feature["id"])
    assert wait_terminal(app_client, auth, run_id)["status"] == "succeeded"
    other = {"Authorization": f"Bearer {make_key(f'other-{uuid.uuid4().hex[:8]}')}"}
    for path in (f"/v1/task-runs/{run_id}/result", f"/v1/task-runs/{uuid.uuid4()}/result"):
        answer = app_client.get(path, headers=other)
        assert answer.status_code == 404 and answer.json()["detail"] == "result not found"
    foreign = app_client.post(f"/v1/features/{feature['id']}/runs", json={"task": "redact"}, headers=other)
    missing = app_client.post(f"/v1/features/{uuid.uuid4()}/runs", json={"task": "redact"}, headers=other)
    assert foreign.status_code == missing.status_code == 404 and foreign.content == missing.content
    via_surface = app_client.post(
        "/api/v1/data-products/runs",
        json={"taskName": "redact", "context": {"featureId": feature["id"]}},
        headers=other,
    )
    assert via_surface.status_code == 422 and via_surface.json()["detail"][0]["loc"] == [
        "body",
        "context",
        "featureId",
    ]


def test_bad_requests_are_422_on_the_field_at_fault(
    app_client: TestClient, auth: dict[str, str], settings: Settings, tenant: str
) -> None:
    feature = register(app_client, auth, put_file(settings, tenant, "in/x.jsonl", people(3)))
    path = f"/v1/features/{feature['id']}/runs"
    cases = [
        ({"task": "sleep"}, ["body", "task"]),
        ({"task": "nope"}, ["body", "task"]),
        ({"task": "redact", "context": {"idPatterns": ["("]}}, ["body", "context", "idPatterns"]),
        ({"task": "redact", "context": {"unknown": 1}}, ["body", "context", "unknown"]),
        ({"task": "redact", "context": {"featureId": str(uuid.uuid4())}}, ["body", "context", "featureId"]),
        ({"task": "extract_fields"}, ["body", "context", "paths"]),
    ]
    for body, loc in cases:
        answer = app_client.post(path, json=body, headers=auth)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["detail"][0]["loc"] == loc, body
    missing = app_client.post(
        "/api/v1/data-products/runs", json={"taskName": "redact", "context": {}}, headers=auth
    )
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == [
        "body",
        "context",
        "featureId",
    ]


def test_a_direct_submission_cannot_read_outside_the_tenants_bucket(
    app_client: TestClient, auth: dict[str, str]
) -> None:
    """`POST /v1/runs` takes the kind's params as they are: the worker checks the URL for the run's tenant."""
    params = {"task": "redact", "input_url": "file:///etc/passwd"}
    answer = app_client.post("/v1/runs", json={"kind": "dataset_task", "params": params}, headers=auth)
    assert answer.status_code == 201, answer.text
    run = wait_terminal(app_client, auth, answer.json()["id"])
    assert run["status"] == "failed" and run["error_code"] == "insufficient_data"
    assert "/etc" not in (run["error"] or "") and "passwd" not in (run["error"] or "")


def test_an_uploaded_csv_feature_runs_like_a_jsonl_one(app_client: TestClient, auth: dict[str, str]) -> None:
    rows = "".join(f'{i},"Lee, Ann",ann{i}@example.com\n' for i in range(1, 301))
    uploaded = app_client.post(
        "/v1/features", files={"file": ("people.csv", f"id,name,email\n{rows}".encode())}, headers=auth
    )
    assert uploaded.status_code == 201 and uploaded.json()["format"] == "csv", uploaded.text
    feature_id = uploaded.json()["id"]
    context = {"paths": {"who": "name", "mail": "email"}, "chunkLines": 64}
    run_id = start(app_client, auth, feature_id, task="extract_fields", context=context)
    run = wait_terminal(app_client, auth, run_id)
    assert run["status"] == "succeeded" and run["result"]["line_count"] == 300, run
    result = app_client.get(f"/v1/task-runs/{run_id}/result", headers=auth).text
    records = [json.loads(line) for line in result.splitlines()]
    assert records[0] == {"who": "Lee, Ann", "mail": "ann1@example.com"} and len(records) == 300
    assert [r["mail"] for r in records] == [f"ann{i}@example.com" for i in range(1, 301)]
