"""Contract: GET /api/v1/task-runs against its reference page (seed 002), field for field."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from orchestrator.api.app import create_app
from orchestrator.settings import Settings
from tests.contract.helpers import Runs, seed

pytestmark = pytest.mark.usefixtures("system")

KIND = "dataset_task"
URL = "/api/v1/task-runs"
DOC = seed("002_ab16d709206212a9.txt")
TYPES = {"String": str, "Integer": int, "Array": list}
# Fields whose value is not known for every run; the page shows such a value as null (fail_message).
NULL_UNTIL_KNOWN = {"completed_at", "result_bucket", "result_file_path", "fail_message"}


def _table(section: str) -> dict[str, type]:
    """Rows of a `FieldTypeRequiredDescription` table: `run_idString-Run ID`."""
    rows = re.findall(r"^\s*([a-z_]+)(String|Integer|Array)-", section, flags=re.MULTILINE)
    return {name: TYPES[kind] for name, kind in rows}


def _example() -> dict[str, Any]:
    """The response example, less its `// (Omitted)` line and the trailing comma it leaves."""
    text = DOC.split("The response example is as follows:", 1)[1].split("JSON", 1)[0]
    text = re.sub(r",\s*//[^\n]*", "", text)
    return json.loads(text)  # type: ignore[no-any-return]


PAGE = _table(DOC.split("Response body", 1)[1].split("The following describes runs.", 1)[0])
RUN = _table(DOC.split("The following describes runs.", 1)[1].split("Response status codes", 1)[0])
STATUSES = re.search(r"• (registered(?: \| \w+)+)", DOC)[1].split(" | ")  # type: ignore[index]
QUERY = re.search(r"indexInteger.+?Default: (\d+).+?limitInteger.+?(\d+)-(\d+) \(default: (\d+)\)", DOC, re.S)
EXAMPLE = _example()
STAMP = re.compile(re.sub(r"\d", r"\\d", EXAMPLE["runs"][0]["created_at"]))


def test_the_document_parses_as_expected() -> None:
    assert list(PAGE) == ["index", "limit", "total", "runs"] == list(EXAMPLE)
    assert list(RUN) == list(EXAMPLE["runs"][0]) and len(RUN) == 13
    assert STATUSES == ["registered", "pending", "in_progress", "completed", "failed"]
    assert QUERY is not None and STAMP.pattern == r"\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d"


@pytest.fixture(scope="module")
def runs(engine: Engine, settings: Settings) -> Runs:
    return Runs(engine, settings)


@pytest.fixture(scope="module")
def client(runs: Runs, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(runs.settings, engine)) as c:
        yield c


def page(client: TestClient, auth: dict[str, str], **query: Any) -> dict[str, Any]:
    response = client.get(URL, params=query, headers=auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert list(body) == list(PAGE)
    for name, kind in PAGE.items():
        assert isinstance(body[name], kind), name
    for run in body["runs"]:
        assert list(run) == list(RUN)
        for name, kind in RUN.items():
            value = run[name]
            assert isinstance(value, kind) or (value is None and name in NULL_UNTIL_KNOWN), (name, value)
            assert not isinstance(value, bool)
        assert STAMP.fullmatch(run["created_at"]), run["created_at"]
        assert run["completed_at"] is None or STAMP.fullmatch(run["completed_at"])
        assert run["status"] in STATUSES
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
    assert QUERY is not None
    first = page(client, auth)
    assert (first["index"], first["limit"], first["total"]) == (int(QUERY[1]), int(QUERY[4]), 25)
    assert len(first["runs"]) == int(QUERY[4])
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
    assert QUERY is not None
    low, high = int(QUERY[2]), int(QUERY[3])
    assert page(client, auth, limit=low)["limit"] == low and page(client, auth, limit=high)["limit"] == high
    for query in ({"limit": low - 1}, {"limit": high + 1}, {"index": -1}, {"limit": "x"}, {"index": 2**63}):
        assert client.get(URL, params=query, headers=auth).status_code == 422, query
    assert client.get(URL).status_code == 401
