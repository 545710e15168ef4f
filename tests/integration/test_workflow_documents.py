"""`/v1/workflows`: documents and versions per tenant, refused with a 422 `detail` list when they cannot work,
and the data-products surface's workflow fields, captured from the exact version a run started with."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

WORKFLOWS = "/v1/workflows"
RUNS = "/api/v1/data-products/runs"
NAP = {"key": "nap", "tool": "task", "input": {"task": "sleep", "context": {"duration": 0}}}


def steps(*more: dict[str, Any]) -> dict[str, Any]:
    return {"steps": [NAP, *more]}


def make(client: TestClient, auth: dict[str, str], title: str = "Daily") -> dict[str, Any]:
    made = client.post(WORKFLOWS, json={"title": title, "document": steps()}, headers=auth)
    assert made.status_code == 201, made.text
    return made.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("document", "at", "message"),
    [
        ({"steps": []}, ["body", "document", "steps"], "at least 1"),
        (steps(NAP), ["body", "document"], "repeats"),
        (
            steps({"key": "x", "tool": "exec", "input": {}}),
            ["body", "document", "steps", 1, "tool"],
            "transform",
        ),
        (
            steps({"key": "w", "tool": "join", "input": {"step": "nap"}}),
            ["body", "document"],
            "not an earlier spawn",
        ),
        (
            {"steps": [{**NAP, "input": {"task": "no_such_task"}}]},
            ["body", "document", "steps", 0, "input", "task"],
            "unknown task",
        ),
        (
            {"steps": [{**NAP, "input": {"task": "redact"}}]},
            ["body", "document", "steps", 0, "input", "task"],
            "cannot run inside a workflow",
        ),
        (
            steps({"key": "fan", "tool": "spawn", "input": {"task": "sleep", "count": 1001}}),
            ["body", "document", "steps", 1, "input", "count"],
            "fan-out limit 1000",
        ),
        ({"steps": [{**NAP, "extra": True}]}, ["body", "document", "steps", 0, "extra"], "Extra inputs"),
    ],
)
def test_bad_documents_are_a_422_naming_the_fault(
    app_client: TestClient, auth: dict[str, str], document: dict[str, Any], at: list[Any], message: str
) -> None:
    answer = app_client.post(WORKFLOWS, json={"title": "Bad", "document": document}, headers=auth)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, list) and all(set(item) == {"loc", "msg", "type"} for item in detail)
    assert any(item["loc"] == at and message in item["msg"] for item in detail), detail


def test_versions_are_numbered_listed_and_kept_per_tenant(
    app_client: TestClient, auth: dict[str, str], make_key: Callable[[str], str]
) -> None:
    first = make(app_client, auth)
    assert first["version"] == 1
    path = f"{WORKFLOWS}/{first['id']}"
    second = app_client.post(
        f"{path}/versions", json={"document": steps({**NAP, "key": "again"}), "label": "v2"}, headers=auth
    )
    assert second.status_code == 201 and second.json()["version"] == 2
    shown = app_client.get(path, headers=auth).json()
    assert shown["latest_version"] == 2 and [v["label"] for v in shown["versions"]] == [None, "v2"]
    assert [s["key"] for s in shown["document"]["steps"]] == ["nap", "again"]
    listed = app_client.get(WORKFLOWS, headers=auth).json()
    assert listed["total"] == 1 and listed["data"][0]["id"] == first["id"]
    # Another tenant sees nothing of it, exactly as if it did not exist.
    other = {"Authorization": f"Bearer {make_key(f'other-{uuid.uuid4().hex[:8]}')}"}
    assert app_client.get(path, headers=other).status_code == 404
    assert app_client.post(f"{path}/versions", json={"document": steps()}, headers=other).status_code == 404
    assert app_client.get(WORKFLOWS, headers=other).json()["total"] == 0
    assert app_client.get(f"{WORKFLOWS}/{uuid.uuid4()}", headers=auth).status_code == 404


def test_a_run_captures_the_version_it_started_with(app_client: TestClient, auth: dict[str, str]) -> None:
    made = make(app_client, auth, title="Quarterly")
    body = {"workflowDocumentId": made["id"], "context": {"region": "eu"}, "triggeredBy": "schedule"}
    run = app_client.post(RUNS, json=body, headers=auth)
    assert run.status_code == 200, run.text
    app_client.post(
        f"{WORKFLOWS}/{made['id']}/versions", json={"document": steps(), "label": "v2"}, headers=auth
    )
    detail = app_client.get(f"{RUNS}/{run.json()['id']}", headers=auth).json()
    assert detail["workflowDocumentId"] == made["id"] and detail["workflowDocumentTitle"] == "Quarterly"
    assert (detail["workflowDocumentVersion"], detail["workflowDocumentVersionId"]) == (1, made["version_id"])
    assert detail["workflowDocumentVersionLabel"] is None and detail["taskDisplayName"] == "Quarterly"
    assert detail["context"] == {"region": "eu"} and detail["triggeredBy"] == "schedule"
    snapshot = detail["workflowRuntimeSnapshot"]
    assert snapshot["kind"] == "workflow_runtime_snapshot"
    assert snapshot["document"]["documentVersion"] == 1 and snapshot["document"]["title"] == "Quarterly"
    listed = app_client.get(RUNS, params={"workflow_document_id": made["id"]}, headers=auth).json()
    assert [r["id"] for r in listed["items"]] in ([], [detail["id"]])  # the list trails by a moment
    # A second run takes the newest version.
    later = app_client.post(RUNS, json={"workflowDocumentId": made["id"], "context": {}}, headers=auth).json()
    assert later["workflowDocumentVersion"] == 2 and later["workflowDocumentVersionLabel"] == "v2"


def test_an_unknown_document_is_a_422_and_starts_nothing(
    app_client: TestClient, auth: dict[str, str]
) -> None:
    answer = app_client.post(
        RUNS, json={"workflowDocumentId": str(uuid.uuid4()), "context": {}}, headers=auth
    )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "workflowDocumentId"]
    assert app_client.get(RUNS, headers=auth).json()["total"] == 0
