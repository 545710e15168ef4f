"""Contract: GET /api/v1/task-runs against its description (surfaces/task_runs.json), field for field."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.contract import surfaces
from tests.contract.helpers import Runs

pytestmark = pytest.mark.usefixtures("system")

KIND = "dataset_task"
LIST = surfaces.operation("task_runs", "list_task_runs")
URL = LIST["path"]
INDEX, LIMIT = LIST["query"]["index"], LIST["query"]["limit"]
PAGE = surfaces.objects("task_runs")[LIST["response"]]
RUN = surfaces.objects("task_runs")[PAGE["runs"]["items"]["ref"]]
STATUSES = RUN["status"]["enum"]
EXAMPLE = surfaces.load("task_runs")["examples"][LIST["response"]]
# Beyond the page's own null (fail_message): values not known for every run, shown the same way.
NULL_UNTIL_KNOWN = {"completed_at", "result_bucket", "result_file_path"}
STAMP = re.compile(re.sub(r"\d", r"\\d", EXAMPLE["runs"][0]["created_at"]))


def test_the_description_is_whole() -> None:
    assert list(PAGE) == ["index", "limit", "total", "runs"] == list(EXAMPLE)
    assert list(RUN) == list(EXAMPLE["runs"][0]) and len(RUN) == 13
    assert STATUSES == ["registered", "pending", "in_progress", "completed", "failed"]
    assert STAMP.pattern == r"\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d"
    check_page(EXAMPLE)  # the documented example is a page the checks below accept


def check_page(body: dict[str, Any]) -> None:
    """Exactly the documented fields, in the documented order, each of its documented type and format."""
    assert list(body) == list(PAGE)
    for run in body["runs"]:
        assert list(run) == list(RUN)
        surfaces.check_object(run, RUN, nullable=NULL_UNTIL_KNOWN)
        assert STAMP.fullmatch(run["created_at"]), run["created_at"]
        assert run["completed_at"] is None or STAMP.fullmatch(run["completed_at"])
    surfaces.check_object(body, PAGE)


def page(client: TestClient, auth: dict[str, str], **query: Any) -> dict[str, Any]:
    response = client.get(URL, params=query, headers=auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    check_page(body)
    return body


def attrs(n: int = 0) -> dict[str, Any]:
    return {
        "run_name": f"run-{n}",
        "task_id": "task-1",
        "task_name": "Summarise",
        "feature_id": "feat-1",
        "feature_name": "Reviews",
    }


def test_every_status_with_documented_fields(
    client: TestClient, runs: Runs, auth: dict[str, str], tenant: str
) -> None:
    registered = runs.never_dispatched(tenant, KIND, attrs())
    dispatched = runs.make(tenant, KIND, "pending", attributes=attrs())
    runs.wait_dispatched([dispatched])
    result = {"result_bucket": "bucket", "result_file_path": "out/file.jsonl"}
    made = {
        "in_progress": runs.make(tenant, KIND, "running", attributes=attrs()),
        "retrying": runs.make(tenant, KIND, "retrying", attributes=attrs()),
        "completed": runs.make(tenant, KIND, "succeeded", attributes=attrs(), result=result),
        "failed": runs.make(tenant, KIND, "failed", attributes=attrs()),
        "canceled": runs.make(tenant, KIND, "canceled", attributes=attrs()),
    }
    runs.settle()
    by_id = {r["run_id"]: r for r in page(client, auth)["runs"]}
    assert {r["status"] for r in by_id.values()} == set(STATUSES)
    assert by_id[str(registered)]["status"] == "registered"
    assert by_id[str(dispatched)]["status"] == "pending"
    expected = {"in_progress": "in_progress", "retrying": "in_progress", "completed": "completed"}
    for state, status in {**expected, "failed": "failed", "canceled": "failed"}.items():
        assert by_id[str(made[state])]["status"] == status, state
    done = by_id[str(made["completed"])]
    assert {k: done[k] for k in result} == result and done["fail_message"] is None
    assert done["completed_at"] >= done["created_at"]
    assert {k: done[k] for k in attrs()} == attrs()
    assert by_id[str(made["failed"])]["fail_message"] == "failed with internal_error"
    assert by_id[str(made["canceled"])]["fail_message"] == "canceled"
    assert by_id[str(made["canceled"])]["completed_at"] is not None
    for run_id in (registered, dispatched, made["in_progress"], made["retrying"]):
        run = by_id[str(run_id)]
        assert run["completed_at"] is None and run["fail_message"] is None and run["result_bucket"] is None


def test_line_count_from_progress_then_result_then_zero(
    client: TestClient, runs: Runs, auth: dict[str, str], tenant: str
) -> None:
    counted = runs.make(tenant, KIND, "running", attributes=attrs(), counts={"line_count": 93734})
    from_result = runs.make(tenant, KIND, "succeeded", attributes=attrs(), result={"line_count": 12})
    runs.make(tenant, KIND, "pending", attributes=attrs())
    runs.settle()
    body = page(client, auth)
    assert [r["line_count"] for r in body["runs"]] == [0, 12, 93734]
    assert [r["run_id"] for r in body["runs"][1:]] == [str(from_result), str(counted)]


def test_index_paging_agrees_with_total(
    client: TestClient, runs: Runs, auth: dict[str, str], tenant: str
) -> None:
    made = runs.submit_many(tenant, KIND, [attrs(n) for n in range(25)])
    runs.submit(f"{tenant}-other", KIND, attrs())  # another tenant's run: never counted
    runs.submit(tenant, "taxonomy_build", attrs())  # another kind: never counted
    runs.settle()
    first = page(client, auth)
    assert (first["index"], first["limit"], first["total"]) == (INDEX["default"], LIMIT["default"], 25)
    assert len(first["runs"]) == LIMIT["default"]
    seen: list[str] = []
    for index in range(0, 30, 10):
        body = page(client, auth, index=index, limit=10)
        assert (body["index"], body["limit"], body["total"]) == (index, 10, 25)
        seen += [r["run_id"] for r in body["runs"]]
    assert len(seen) == len(set(seen)) == 25 and set(seen) == {str(r) for r in made}
    assert seen[:20] == [r["run_id"] for r in first["runs"]]
    stamps = [r["created_at"] for r in page(client, auth, limit=100)["runs"]]
    assert stamps == sorted(stamps, reverse=True)
    assert page(client, auth, index=25)["runs"] == [] and page(client, auth, index=25)["total"] == 25


def test_documented_bounds_are_enforced(client: TestClient, auth: dict[str, str]) -> None:
    low, high = LIMIT["minimum"], LIMIT["maximum"]
    assert page(client, auth, limit=low)["limit"] == low and page(client, auth, limit=high)["limit"] == high
    for query in ({"limit": low - 1}, {"limit": high + 1}, {"index": -1}, {"limit": "x"}, {"index": 2**63}):
        assert client.get(URL, params=query, headers=auth).status_code == 422, query
    assert client.get(URL).status_code == 401
