"""The data-products surface against its description (surfaces/data_products.json), in process over the
real database.

The field names and JSON types of every object (list item, detail, step, usage, task, context variable) are
what the responses are checked against, so a change to either side shows up here. Runs go to a queue no
worker consumes unless a test needs them executed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from orchestrator.api.app import create_app
from orchestrator.domain.commands import FinishStep, RecordUsage, StartAttempt, StartStep, Succeed
from orchestrator.projections import runner
from orchestrator.services import RunService, SubmitRequest
from orchestrator.settings import Settings
from orchestrator.store.events import head_position
from schemas.tasks import PUBLISHED_TASKS
from tests.conftest import System
from tests.contract import surfaces
from tests.services import wait_until

pytestmark = pytest.mark.usefixtures("system")

SURFACE = surfaces.load("data_products")
OBJECTS = SURFACE["objects"]
OPERATIONS = SURFACE["operations"]
RUNS = OPERATIONS["list_runs"]["path"]
TASKS = OPERATIONS["list_published_tasks"]["path"]
BASE = RUNS.removesuffix("/runs")
TRIGGERED_BY = OBJECTS[OPERATIONS["create_run"]["body"]]["triggeredBy"]["default"]
[COOKIE] = SURFACE["auth"]["cookies"]
RUN_SCOPED = [(op["method"], op["path"]) for op in OPERATIONS.values() if "path_parameters" in op]
ERROR_ITEM = OBJECTS[OBJECTS[OPERATIONS["list_runs"]["error"]]["detail"]["items"]["ref"]]
# Null because nothing records them yet (the surface never invents a value).
UNRECORDED = {"transcriptContent", "transcriptRawData", "transcriptUpdatedAt", "sourceType", "toolCallId"}


def test_the_description_is_whole() -> None:
    assert f"{BASE}/tasks" == TASKS and BASE == "/api/v1/data-products"
    assert {op["path"].removeprefix(RUNS) for op in OPERATIONS.values() if op["path"] != TASKS} == {
        "",
        "/{run_id}",
        "/{run_id}/cancel",
        "/{run_id}/events",
        "/{run_id}/tree",
    }
    assert len(OBJECTS["runSummary"]) == 22 and set(OBJECTS["runSummary"]) < set(OBJECTS["run"])
    assert set(ERROR_ITEM) == {"loc", "msg", "type"}
    assert all(
        spec["required"]
        for fields in OBJECTS.values()
        if fields is not OBJECTS["createRun"]
        for spec in fields.values()
    )


def assert_shape(actual: dict[str, Any], name: str, nullable: Collection[str] = UNRECORDED) -> None:
    """Exactly the fields of the object `name`, each of its JSON type (uuid and date-time strings checked as
    such); null only for the fields in `nullable`."""
    fields = OBJECTS[name]
    assert set(actual) == set(fields), (set(fields) - set(actual), set(actual) - set(fields))
    surfaces.check_object(actual, fields, nullable)


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


def create(client: TestClient, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post(RUNS, json={"taskName": "sleep", "context": {"duration": 1}, **body}, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def head(engine: Engine) -> int:
    with engine.connect() as conn:
        return head_position(conn)


def settle(engine: Engine, position: int) -> None:
    """Wait until both read models have applied `position` (runs written through the service directly)."""
    for name in ("runs", "steps"):
        assert runner.wait_for(engine, position, 10.0, name)


def test_a_fully_recorded_run_has_every_field_of_the_document(
    client: TestClient, idle_service: RunService, engine: Engine, auth: dict[str, str], tenant: str
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
        last = idle_service.execute(run_id, command)
    settle(engine, last.position)

    detail = client.get(f"{RUNS}/{run_id}", headers=auth).json()
    assert_shape(detail, "run", nullable=UNRECORDED | {"error"})  # it succeeded
    assert_shape(detail["observability"], "observability")
    assert_shape(detail["observability"]["usage"], "usage", nullable=set())
    assert_shape(detail["outcome"], "outcome", nullable=set())
    assert [s["stepKey"] for s in detail["steps"]] == ["query"]
    assert_shape(detail["steps"][0], "step", nullable=UNRECORDED | {"error"})
    assert detail["observability"]["usage"] == {
        "inputTokens": 110,
        "outputTokens": 22,
        "cachedInputTokens": 5,
        "cacheWriteTokens": 1,
        "totalCost": "0.0042",
    }
    assert detail["outcome"] == outcome and detail["status"] == "succeeded"
    assert detail["parentRunId"] == detail["rootRunId"] == str(parent.run_id) and detail["depth"] == 1
    assert detail["steps"] == client.get(f"{RUNS}/{run_id}", headers=auth).json()["steps"]  # stable ids

    listed = client.get(RUNS, params={"thread_id": attributes["thread_id"]}, headers=auth).json()
    assert listed["total"] == 1
    assert_shape(listed["items"][0], "runSummary", nullable=set())
    assert {k: detail[k] for k in OBJECTS["runSummary"]} == listed["items"][0]
    tree = client.get(f"{RUNS}/{run_id}/tree", headers=auth).json()["items"]
    assert [item for item in tree if item["id"] == str(run_id)] == listed["items"]


def test_create_fills_defaults_visible_on_get(client: TestClient, auth: dict[str, str]) -> None:
    created = create(client, auth, context={"duration": 0.5})
    assert_shape(created, "run", nullable=set(OBJECTS["run"]) - {"id", "createdAt", "status", "context"})
    fetched = client.get(f"{RUNS}/{created['id']}", headers=auth).json()
    assert fetched["context"] == created["context"] == {"duration": 0.5, "steps": 1, "fail": False}
    assert fetched["taskId"] == str(PUBLISHED_TASKS["sleep"].id) and fetched["triggeredBy"] == TRIGGERED_BY
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
    response = client.post(RUNS, json=body, headers=auth)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert all(set(item) == set(ERROR_ITEM) for item in detail)
    assert loc in [item["loc"] for item in detail]


def test_a_missing_required_variable_is_named(client: TestClient, auth: dict[str, str]) -> None:
    response = client.post(RUNS, json={"taskName": "sleep", "context": {"steps": 2}}, headers=auth)
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
    response = client.get(f"{RUNS}?{query}", headers=auth)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and all(set(item) == set(ERROR_ITEM) for item in detail)
    assert ["query", query.split("=")[0]] in [item["loc"] for item in detail]


def test_offset_pages_agree_with_total(client: TestClient, auth: dict[str, str], engine: Engine) -> None:
    document = str(uuid.uuid4())
    ids = [create(client, auth, workflowDocumentId=document)["id"] for _ in range(5)]
    create(client, auth)  # same tenant, another document: filtered out
    settle(engine, head(engine))  # lists read the projection, which trails the creates
    query = {"workflow_document_id": document}
    whole = client.get(RUNS, params={**query, "limit": 100}, headers=auth).json()
    assert whole["total"] == 5 and [r["id"] for r in whole["items"]] == ids[::-1]  # newest first
    paged: list[str] = []
    for offset in (0, 2, 4, 6):
        page = client.get(RUNS, params={**query, "limit": 2, "offset": offset}, headers=auth).json()
        assert page["total"] == 5
        paged += [r["id"] for r in page["items"]]
    assert paged == ids[::-1]
    assert client.get(RUNS, headers=auth).json()["total"] == 6


def test_root_only_status_and_task_filters(
    client: TestClient, idle_service: RunService, engine: Engine, auth: dict[str, str], tenant: str
) -> None:
    root = create(client, auth)
    child = idle_service.submit(
        SubmitRequest(tenant_id=tenant, kind="sleep", parent_id=uuid.UUID(root["id"]))
    )
    settle(engine, child.position)
    everything = client.get(RUNS, headers=auth).json()
    assert everything["total"] == 2
    roots = client.get(RUNS, params={"root_only": True}, headers=auth).json()
    assert roots["total"] == 1 and [r["id"] for r in roots["items"]] == [root["id"]]
    task = client.get(RUNS, params={"task_id": root["taskId"]}, headers=auth).json()
    assert [r["id"] for r in task["items"]] == [root["id"]]
    assert client.post(f"{RUNS}/{root['id']}/cancel", headers=auth).json()["status"] == "canceled"
    settle(engine, head(engine))
    canceled = client.get(RUNS, params={"status": "canceled"}, headers=auth).json()
    # The cancel cascades: the child, newest, is canceled with its root.
    assert [r["id"] for r in canceled["items"]] == [str(child.run_id), root["id"]]


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
        items = client.get(f"{RUNS}/{member}/tree", headers=auth).json()["items"]
        assert [i["id"] for i in items] == [str(x) for x in expected]
        assert [i["depth"] for i in items] == [0, 1, 2, 3, 2, 1, 2]
        assert {i["rootRunId"] for i in items} == {str(root)}


def test_tasks_match_the_document(client: TestClient, auth: dict[str, str]) -> None:
    items = client.get(TASKS, headers=auth).json()["items"]
    sleep = next(t for t in items if t["name"] == "sleep")
    assert_shape(sleep, "task", nullable=set())
    for var in sleep["contextVars"]:
        assert_shape(var, "contextVar", nullable={"default", "resolveFrom"})
    variables = {v["name"]: v for v in sleep["contextVars"]}
    assert variables["duration"]["required"] and variables["duration"]["type"] == "number"
    assert variables["steps"]["default"] == 1 and variables["fail"]["default"] is False


def test_every_key_carrier_works(client: TestClient, make_key: Callable[[str], str], tenant: str) -> None:
    key = make_key(tenant)
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}, {"Cookie": f"{COOKIE}={key}"}):
        assert client.get(RUNS, headers=headers).status_code == 200
        assert client.get(TASKS, headers=headers).status_code == 200
    refused = client.get(TASKS)
    assert refused.status_code == 401 and refused.json()["error_code"] == "unauthenticated"


def test_another_tenants_run_answers_like_a_missing_one(
    client: TestClient, auth: dict[str, str], make_key: Callable[[str], str]
) -> None:
    run = create(client, auth)
    other = {"X-API-Key": make_key(f"other-{uuid.uuid4().hex[:8]}")}
    assert len(RUN_SCOPED) == 4  # get, cancel, events, tree
    for method, path in RUN_SCOPED:
        foreign = client.request(method, path.format(run_id=run["id"]), headers=other)
        missing = client.request(method, path.format(run_id=uuid.uuid4()), headers=other)
        assert foreign.status_code == missing.status_code == 404
        assert foreign.content == missing.content
    assert client.get(RUNS, headers=other).json() == {"items": [], "total": 0}


def test_cancel_returns_the_detail_and_a_retried_cancel_the_same(
    client: TestClient, idle_service: RunService, auth: dict[str, str], tenant: str
) -> None:
    run = create(client, auth)
    canceled = client.post(f"{RUNS}/{run['id']}/cancel", headers=auth)
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert canceled.json()["completedAt"] is not None
    again = client.post(f"{RUNS}/{run['id']}/cancel", headers=auth)
    assert again.status_code == 200 and again.json()["status"] == "canceled"
    # Only a run that ended otherwise refuses a cancel.
    done = idle_service.submit(SubmitRequest(tenant_id=tenant, kind="sleep")).run_id
    idle_service.execute(done, StartAttempt(1, "contract-test"))
    idle_service.execute(done, Succeed(1))
    refused = client.post(f"{RUNS}/{done}/cancel", headers=auth)
    assert refused.status_code == 409 and refused.json()["error_code"] == "illegal_transition"


def test_a_workflow_run_fills_the_workflow_fields(
    app_client: TestClient, engine: Engine, auth: dict[str, str]
) -> None:
    """Executed by the session's worker: document, version, snapshot, steps with tool call ids, summed usage
    and the outcome all come from the run itself."""
    usage = {"input_tokens": 4, "output_tokens": 1, "cost": "0.01"}
    fan = {"task": "sleep", "count": 2, "context": {"duration": 0, "usage": usage}}
    document = {
        "steps": [
            {"key": "fan", "tool": "spawn", "input": fan},
            {"key": "wait", "tool": "join", "input": {"step": "fan"}},
        ]
    }
    made = app_client.post(
        "/v1/workflows", json={"title": "Contract", "document": document}, headers=auth
    ).json()
    version = app_client.post(
        f"/v1/workflows/{made['id']}/versions", json={"document": document, "label": "v2"}, headers=auth
    ).json()
    created = app_client.post(RUNS, json={"workflowDocumentId": made["id"], "context": {}}, headers=auth)
    assert created.status_code == 200, created.text

    def finished() -> dict[str, Any] | None:
        run: dict[str, Any] = app_client.get(f"{RUNS}/{created.json()['id']}", headers=auth).json()
        done = run["status"] == "succeeded" and len([s for s in run["steps"] if s["completedAt"]]) == 2
        return run if done else None

    detail = wait_until(finished, timeout=30, interval=0.1, message="the workflow run succeeded")
    unset = {
        "originRoomId",
        "originRoomRunId",
        "originThreadId",
        "parentRunId",
        "taskId",
        "triggerRef",
        "workspaceId",
    }
    assert_shape(detail, "run", nullable=(UNRECORDED - {"toolCallId"}) | unset | {"error"})
    assert_shape(detail["outcome"], "outcome", nullable={"artifactId"})  # no artifact store yet
    assert_shape(detail["workflowRuntimeSnapshot"], "runtimeSnapshot", nullable=set())
    assert_shape(detail["workflowRuntimeSnapshot"]["document"], "snapshotDocument", nullable=set())
    for step in detail["steps"]:
        assert_shape(step, "step", nullable=(UNRECORDED - {"toolCallId"}) | {"error"})
    assert (detail["workflowDocumentVersion"], detail["workflowDocumentVersionId"]) == (
        2,
        version["version_id"],
    )
    assert detail["workflowDocumentVersionLabel"] == "v2" and detail["workflowDocumentTitle"] == "Contract"
    assert [(s["sequence"], s["stepKey"], s["toolName"]) for s in detail["steps"]] == [
        (1, "fan", "spawn"),
        (2, "wait", "join"),
    ]
    assert detail["observability"]["usage"]["inputTokens"] == 8 and detail["outcome"]["rowCount"] == 2


def test_an_attribute_of_another_shape_reads_as_null_in_lists_and_trees(
    client: TestClient, idle_service: RunService, engine: Engine, auth: dict[str, str], tenant: str
) -> None:
    """Attributes are shared by every surface and job: one this surface cannot read is unknown (null), and
    the rest of the run, and of the page, is still shown."""
    attributes = {
        "task_id": "not-a-uuid",
        "workflow_document_version": {"major": 3},
        "task_display_name": "Shown",
        "thread_id": str(uuid.uuid4()),
    }
    run = idle_service.submit(SubmitRequest(tenant_id=tenant, kind="sleep", attributes=attributes))
    settle(engine, run.position)
    listed = client.get(RUNS, params={"thread_id": attributes["thread_id"]}, headers=auth).json()["items"]
    tree = client.get(f"{RUNS}/{run.run_id}/tree", headers=auth).json()["items"]
    for item in (listed[0], tree[0]):
        assert item["taskId"] is None and item["workflowDocumentVersion"] is None
        assert item["taskDisplayName"] == "Shown" and item["originThreadId"] == attributes["thread_id"]
    assert listed == tree
