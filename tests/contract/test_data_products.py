"""The data-products surface against its published document, in process over the real database.

The document is parsed at run time: the field names and JSON types of every example (list item, detail,
step, usage, task, context variable) are what the responses are checked against, so a change to either
side shows up here. Runs go to a queue no worker consumes unless a test needs them executed.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from orchestrator.api.app import create_app
from orchestrator.domain.commands import Command, FinishStep, RecordUsage, StartStep, Succeed
from orchestrator.domain.state import RunState
from orchestrator.projections import runner
from orchestrator.services import RunService, SubmitRequest
from orchestrator.settings import Settings
from schemas.tasks import PUBLISHED_TASKS
from tests.conftest import System

pytestmark = pytest.mark.usefixtures("system")

SEED = Path(__file__).resolve().parents[3] / "shared" / "seeds" / "001_e2099050e80bab63.txt"
BASE = "/api/v1/data-products"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DATETIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number", dict: "object", list: "array"}
# Null because nothing records them yet (the surface never invents a value).
UNRECORDED = {"transcriptContent", "transcriptRawData", "transcriptUpdatedAt", "sourceType", "toolCallId"}


def document_examples(text: str) -> dict[str, dict[str, Any]]:
    """Every JSON example on the page, picked out by shape (the page is rendered text, not OpenAPI)."""
    decoder, found, i = json.JSONDecoder(), [], 0
    while (i := text.find("{", i)) != -1:
        try:
            obj, i = decoder.raw_decode(text, i)
            found.append(obj)
        except json.JSONDecodeError:
            i += 1
    listing = next(o for o in found if "total" in o)
    detail = next(o for o in found if "steps" in o)
    tasks = next(o for o in found if set(o) == {"items"} and "contextVars" in o["items"][0])
    return {
        "summary": listing["items"][0],
        "detail": detail,
        "step": detail["steps"][0],
        "observability": detail["observability"],
        "usage": detail["observability"]["usage"],
        "outcome": detail["outcome"],
        "task": tasks["items"][0],
        "contextVar": tasks["items"][0]["contextVars"][0],
    }


def assert_shape(actual: dict[str, Any], example: dict[str, Any], nullable: set[str] = UNRECORDED) -> None:
    """Exactly the document's fields, each of its JSON type (uuid and date-time strings checked as such)."""
    assert set(actual) == set(example), (set(example) - set(actual), set(actual) - set(example))
    for name, sample in example.items():
        value = actual[name]
        if value is None:
            assert name in nullable, f"{name} is null"
        elif name == "default":  # the page renders an untyped (any JSON) schema as {}
            continue
        else:
            assert JSON_TYPES[type(value)] == JSON_TYPES[type(sample)], (name, value)
            if isinstance(sample, str) and UUID_RE.fullmatch(sample):
                uuid.UUID(value)
            elif isinstance(sample, str) and DATETIME_RE.match(sample):
                assert datetime.fromisoformat(value).tzinfo is not None, (name, value)


@pytest.fixture(scope="module")
def doc() -> dict[str, dict[str, Any]]:
    return document_examples(SEED.read_text())


@pytest.fixture(scope="module")
def idle_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"queue_prefix": f"idle{uuid.uuid4().hex[:8]}"})


@pytest.fixture(scope="module")
def client(idle_settings: Settings, engine: Engine, system: System) -> Iterator[TestClient]:
    with TestClient(create_app(idle_settings, engine)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def idle_service(engine: Engine, idle_settings: Settings) -> RunService:
    return RunService(engine, idle_settings)


def constant(command: Command) -> Callable[[RunState], Command]:
    return lambda _state: command


def create(client: TestClient, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post(
        f"{BASE}/runs", json={"taskName": "sleep", "context": {"duration": 1}, **body}, headers=auth
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def settle(engine: Engine, position: int) -> None:
    """Wait until both read models have applied `position` (runs written through the service directly)."""
    for name in ("runs", "steps"):
        assert runner.wait_for(engine, position, 10.0, name)


def test_a_fully_recorded_run_has_every_field_of_the_document(
    client: TestClient, idle_service: RunService, engine: Engine, auth: dict[str, str], tenant: str, doc: Any
) -> None:
    parent = idle_service.submit(SubmitRequest(tenant_id=tenant, kind="sleep"))
    task = PUBLISHED_TASKS["sleep"]
    attributes = {
        "task_id": str(task.id),
        "task_display_name": task.display_name,
        "triggered_by": "schedule",
        "trigger_ref": "nightly",
        "context": {"duration": 0, "steps": 1, "fail": False},
        **{
            k: str(uuid.uuid4())
            for k in ("origin_room_id", "origin_room_run_id", "thread_id", "workspace_id")
        },
        **{k: str(uuid.uuid4()) for k in ("workflow_document_id", "workflow_document_version_id")},
        "workflow_document_title": "Quarterly",
        "workflow_document_version": 3,
        "workflow_document_version_label": "v3",
        "model_id": "m-1",
        "provider": "p",
        "trace_provider": "t",
        "loaded_skill_slugs": ["sql"],
        "workflow_runtime_snapshot": {
            "kind": "workflow_runtime_snapshot",
            "document": {"title": "Quarterly"},
        },
    }
    child = idle_service.submit(
        SubmitRequest(tenant_id=tenant, kind="sleep", parent_id=parent.run_id, attributes=attributes)
    )
    run_id = child.run_id
    assert idle_service.start_attempt(run_id, 1, "contract-test") is not None
    outcome = {
        "artifactId": "a1",
        "artifactName": "Sales",
        "rendererKind": "table",
        "rowCount": 12,
        "summary": "12 rows",
        "version": 2,
    }
    for command in (
        StartStep(1, "query", 1, "sql", {"q": "select 1"}),
        FinishStep(1, "query", 1, "succeeded", {"rows": 12}, None, 40),
        RecordUsage(1, 100, 20, 5, 1, "0.0012"),
        RecordUsage(1, 10, 2, 0, 0, "0.003"),
        Succeed(1, {"outcome": outcome}),
    ):
        last = idle_service.execute(run_id, constant(command))
    settle(engine, last.position)

    detail = client.get(f"{BASE}/runs/{run_id}", headers=auth).json()
    assert_shape(detail, doc["detail"], nullable=UNRECORDED | {"error"})  # it succeeded
    assert_shape(detail["observability"], doc["observability"])
    assert_shape(detail["observability"]["usage"], doc["usage"], nullable=set())
    assert_shape(detail["outcome"], doc["outcome"], nullable=set())
    assert [s["stepKey"] for s in detail["steps"]] == ["query"]
    assert_shape(detail["steps"][0], doc["step"], nullable=UNRECORDED | {"error"})
    assert detail["observability"]["usage"] == {
        "inputTokens": 110,
        "outputTokens": 22,
        "cachedInputTokens": 5,
        "cacheWriteTokens": 1,
        "totalCost": "0.0042",
    }
    assert detail["outcome"] == outcome and detail["status"] == "succeeded"
    assert detail["parentRunId"] == detail["rootRunId"] == str(parent.run_id) and detail["depth"] == 1
    assert detail["steps"] == client.get(f"{BASE}/runs/{run_id}", headers=auth).json()["steps"]  # stable ids

    listed = client.get(f"{BASE}/runs", params={"thread_id": attributes["thread_id"]}, headers=auth).json()
    assert listed["total"] == 1
    assert_shape(listed["items"][0], doc["summary"], nullable=set())
    assert {k: detail[k] for k in doc["summary"]} == listed["items"][0]


def test_create_fills_defaults_visible_on_get(client: TestClient, auth: dict[str, str], doc: Any) -> None:
    created = create(client, auth, context={"duration": 0.5})
    assert_shape(
        created, doc["detail"], nullable=set(doc["detail"]) - {"id", "createdAt", "status", "context"}
    )
    fetched = client.get(f"{BASE}/runs/{created['id']}", headers=auth).json()
    assert fetched["context"] == created["context"] == {"duration": 0.5, "steps": 1, "fail": False}
    assert fetched["taskId"] == str(PUBLISHED_TASKS["sleep"].id) and fetched["triggeredBy"] == "api"
    assert fetched["status"] == "pending" and fetched["steps"] == [] and fetched["outcome"] is None
    assert fetched["observability"]["usage"]["totalCost"] == "0"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"taskName": "sleep", "context": {}}, ["body", "context", "duration"]),
        ({"taskName": "sleep", "context": {"duration": "long"}}, ["body", "context", "duration"]),
        ({"taskName": "sleep", "context": {"duration": -1}}, ["body", "context", "duration"]),
        ({"taskName": "sleep", "context": {"duration": 1, "nope": 1}}, ["body", "context", "nope"]),
        ({"context": {"duration": 1}}, ["body", "taskName"]),
        ({"taskName": "nope", "context": {}}, ["body", "taskName"]),
        ({"taskName": "sleep"}, ["body", "context"]),
        ({"taskName": "sleep", "context": {"duration": 1}, "tenant_id": "x"}, ["body", "tenant_id"]),
        ({"taskName": "sleep", "context": {"duration": 1}, "workspaceId": "x"}, ["body", "workspaceId"]),
    ],
)
def test_create_rejects_bad_bodies_naming_the_field(
    client: TestClient, auth: dict[str, str], body: dict[str, Any], loc: list[str]
) -> None:
    response = client.post(f"{BASE}/runs", json=body, headers=auth)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert all(set(item) == {"loc", "msg", "type"} for item in detail)
    assert loc in [item["loc"] for item in detail]


def test_a_missing_required_variable_is_named(client: TestClient, auth: dict[str, str]) -> None:
    response = client.post(f"{BASE}/runs", json={"taskName": "sleep", "context": {"steps": 2}}, headers=auth)
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "loc": ["body", "context", "duration"],
            "msg": "missing required context variable 'duration'",
            "type": "missing",
        }
    ]


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=101", "limit=x", "offset=-1", "status=done", "task_id=nope", "root_only=maybe"],
)
def test_list_rejects_bad_queries(client: TestClient, auth: dict[str, str], query: str) -> None:
    response = client.get(f"{BASE}/runs?{query}", headers=auth)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and all(set(item) == {"loc", "msg", "type"} for item in detail)
    assert ["query", query.split("=")[0]] in [item["loc"] for item in detail]


def test_offset_pages_agree_with_total(client: TestClient, auth: dict[str, str]) -> None:
    document = str(uuid.uuid4())
    ids = [create(client, auth, workflowDocumentId=document)["id"] for _ in range(5)]
    create(client, auth)  # same tenant, another document: filtered out
    query = {"workflow_document_id": document}
    whole = client.get(f"{BASE}/runs", params={**query, "limit": 100}, headers=auth).json()
    assert whole["total"] == 5 and [r["id"] for r in whole["items"]] == ids[::-1]  # newest first
    paged: list[str] = []
    for offset in (0, 2, 4, 6):
        page = client.get(f"{BASE}/runs", params={**query, "limit": 2, "offset": offset}, headers=auth).json()
        assert page["total"] == 5
        paged += [r["id"] for r in page["items"]]
    assert paged == ids[::-1]
    assert client.get(f"{BASE}/runs", headers=auth).json()["total"] == 6


def test_root_only_status_and_task_filters(
    client: TestClient, idle_service: RunService, engine: Engine, auth: dict[str, str], tenant: str
) -> None:
    root = create(client, auth)
    child = idle_service.submit(
        SubmitRequest(tenant_id=tenant, kind="sleep", parent_id=uuid.UUID(root["id"]))
    )
    settle(engine, child.position)
    everything = client.get(f"{BASE}/runs", headers=auth).json()
    assert everything["total"] == 2
    roots = client.get(f"{BASE}/runs", params={"root_only": True}, headers=auth).json()
    assert roots["total"] == 1 and [r["id"] for r in roots["items"]] == [root["id"]]
    task = client.get(f"{BASE}/runs", params={"task_id": root["taskId"]}, headers=auth).json()
    assert [r["id"] for r in task["items"]] == [root["id"]]
    assert client.post(f"{BASE}/runs/{root['id']}/cancel", headers=auth).json()["status"] == "canceled"
    canceled = client.get(f"{BASE}/runs", params={"status": "canceled"}, headers=auth).json()
    assert [r["id"] for r in canceled["items"]] == [root["id"]]


def test_tree_is_root_first_depth_first(
    client: TestClient, idle_service: RunService, engine: Engine, auth: dict[str, str], tenant: str
) -> None:
    def submit(parent: uuid.UUID | None) -> uuid.UUID:
        return idle_service.submit(SubmitRequest(tenant_id=tenant, kind="sleep", parent_id=parent)).run_id

    root = submit(None)
    a = submit(root)
    b = submit(root)
    a1 = submit(a)
    b1 = submit(b)
    a2 = submit(a)
    last = idle_service.submit(SubmitRequest(tenant_id=tenant, kind="sleep", parent_id=a1))
    settle(engine, last.position)
    expected = [root, a, a1, last.run_id, a2, b, b1]
    for member in (root, b1, last.run_id):
        items = client.get(f"{BASE}/runs/{member}/tree", headers=auth).json()["items"]
        assert [i["id"] for i in items] == [str(x) for x in expected]
        assert [i["depth"] for i in items] == [0, 1, 2, 3, 2, 1, 2]
        assert {i["rootRunId"] for i in items} == {str(root)}


def test_tasks_match_the_document(client: TestClient, auth: dict[str, str], doc: Any) -> None:
    items = client.get(f"{BASE}/tasks", headers=auth).json()["items"]
    sleep = next(t for t in items if t["name"] == "sleep")
    assert_shape(sleep, doc["task"], nullable=set())
    for var in sleep["contextVars"]:
        assert_shape(var, doc["contextVar"], nullable={"default", "resolveFrom"})
    variables = {v["name"]: v for v in sleep["contextVars"]}
    assert variables["duration"]["required"] and variables["duration"]["type"] == "number"
    assert variables["steps"]["default"] == 1 and variables["fail"]["default"] is False


def test_every_key_carrier_works(client: TestClient, make_key: Callable[[str], str], tenant: str) -> None:
    key = make_key(tenant)
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}, {"Cookie": f"vai_token={key}"}):
        assert client.get(f"{BASE}/runs", headers=headers).status_code == 200
        assert client.get(f"{BASE}/tasks", headers=headers).status_code == 200
    refused = client.get(f"{BASE}/tasks")
    assert refused.status_code == 401 and refused.json()["error_code"] == "unauthenticated"


def test_another_tenants_run_answers_like_a_missing_one(
    client: TestClient, auth: dict[str, str], make_key: Callable[[str], str]
) -> None:
    run = create(client, auth)
    other = {"X-API-Key": make_key(f"other-{uuid.uuid4().hex[:8]}")}
    for method, path in (
        ("GET", "/runs/{}"),
        ("POST", "/runs/{}/cancel"),
        ("GET", "/runs/{}/tree"),
        ("GET", "/runs/{}/events"),
    ):
        foreign = client.request(method, BASE + path.format(run["id"]), headers=other)
        missing = client.request(method, BASE + path.format(uuid.uuid4()), headers=other)
        assert foreign.status_code == missing.status_code == 404
        assert foreign.content == missing.content
    assert client.get(f"{BASE}/runs", headers=other).json() == {"items": [], "total": 0}


def test_cancel_returns_the_detail_then_409(client: TestClient, auth: dict[str, str]) -> None:
    run = create(client, auth)
    canceled = client.post(f"{BASE}/runs/{run['id']}/cancel", headers=auth)
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert canceled.json()["completedAt"] is not None
    again = client.post(f"{BASE}/runs/{run['id']}/cancel", headers=auth)
    assert again.status_code == 409 and again.json()["error_code"] == "illegal_transition"
