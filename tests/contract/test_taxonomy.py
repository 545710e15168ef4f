"""Contract: GET/POST /v1/taxonomy/runs against its description (surfaces/taxonomy.json), field for field."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from orchestrator.store import keys
from schemas.runs import ErrorCode
from tests.contract import surfaces
from tests.contract.helpers import Runs

pytestmark = pytest.mark.usefixtures("system")

KIND = "taxonomy_build"
LIST = surfaces.operation("taxonomy", "list_runs")
URL = LIST["path"]
QUERY = LIST["query"]
RUN_LIST = surfaces.objects("taxonomy")[LIST["response"]]
RUN = surfaces.objects("taxonomy")[RUN_LIST["data"]["items"]["ref"]]
STATUSES = RUN["status"]["enum"]
ERROR_CODES = RUN["error_code"]["enum"]
# Not in the document: how many runs an unbounded listing returns is ours.
DEFAULT_LIMIT = 50


def test_the_description_is_whole() -> None:
    # The page's "Run { id, cluster_count, created_at, 16 more }": 19 fields, 12 of them always there.
    assert len(RUN) == 19 and len(surfaces.required(RUN)) == 12
    assert set(QUERY) == {"tenant_id", "field_id", "source_type", "source_id", "limit"}
    assert len(STATUSES) == len(ERROR_CODES) == 5
    transitions = surfaces.load("taxonomy")["transitions"]
    assert set(transitions) | {s for targets in transitions.values() for s in targets} == set(STATUSES)


def check_documented_shape(run: dict[str, Any]) -> None:
    """Every required field present, nothing undocumented, each value of its documented type and format;
    the page never shows null, so a field that does not apply is absent."""
    surfaces.check_object(run, RUN)


def attrs(field_id: str = "f1", source_type: str = "crm", source_id: str = "", **more: Any) -> dict[str, Any]:
    return {"field_id": field_id, "source_type": source_type, "source_id": source_id, **more}


def listing(client: TestClient, auth: dict[str, str], **query: Any) -> list[dict[str, Any]]:
    response = client.get(URL, params=query, headers=auth)
    assert response.status_code == 200, response.text
    assert set(response.json()) == set(RUN_LIST) == {"data"}
    return response.json()["data"]  # type: ignore[no-any-return]


def test_every_status_and_error_code_with_documented_fields(
    client: TestClient, runs: Runs, auth: dict[str, str], tenant: str
) -> None:
    made = {state: runs.make(tenant, KIND, state, attributes=attrs()) for state in ("pending", "running")}
    made["retrying"] = runs.make(tenant, KIND, "retrying", attributes=attrs())
    made["succeeded"] = runs.make(tenant, KIND, "succeeded", attributes=attrs(), metrics={"k": 2})
    made["canceled"] = runs.make(tenant, KIND, "canceled", attributes=attrs())
    failed = {
        code: runs.make(tenant, KIND, "failed", attributes=attrs(), error_code=ErrorCode(code))
        for code in ERROR_CODES
    }
    runs.settle()
    by_id = {UUID(r["id"]): r for r in listing(client, auth, tenant_id=tenant)}
    for run in by_id.values():
        check_documented_shape(run)
        assert run["tenant_id"] == tenant and "params" in run
    assert {r["status"] for r in by_id.values()} == set(STATUSES)
    assert {by_id[i]["error_code"] for i in failed.values()} == set(ERROR_CODES)
    for code, run_id in failed.items():
        assert by_id[run_id]["error"] == f"failed with {code}"
    pending, running = by_id[made["pending"]], by_id[made["running"]]
    assert not {"started_at", "finished_at", "metrics", "error", "error_code", "field_label"} & set(pending)
    assert "started_at" in running and "finished_at" not in running
    # A scheduled retry keeps the run running; its attempt's error is not a failure of the run.
    assert by_id[made["retrying"]]["status"] == "running"
    assert not {"error", "error_code"} & set(by_id[made["retrying"]])
    done = by_id[made["succeeded"]]
    assert done["metrics"] == {"k": 2} and {"started_at", "finished_at"} <= set(done)
    assert "finished_at" in by_id[made["canceled"]]


def test_counts_come_from_progress_then_result_then_zero(
    client: TestClient, runs: Runs, auth: dict[str, str], tenant: str
) -> None:
    run_id = runs.make(
        tenant,
        KIND,
        "succeeded",
        attributes=attrs(field_label="Industry"),
        counts={"record_count": 120, "embedding_count": 118},
        result={"record_count": 1, "cluster_count": 9},
    )
    runs.settle()
    [run] = listing(client, auth, tenant_id=tenant)
    assert run["id"] == str(run_id) and run["field_label"] == "Industry"
    assert (run["record_count"], run["embedding_count"], run["cluster_count"], run["node_count"]) == (
        120,
        118,
        9,
        0,
    )


def test_source_id_is_tri_state_and_filters_combine(
    client: TestClient, runs: Runs, auth: dict[str, str], tenant: str
) -> None:
    none_ = runs.submit(tenant, KIND, attrs(source_id=""))
    s1 = runs.submit(tenant, KIND, attrs(source_id="s1"))
    s2 = runs.submit(tenant, KIND, attrs(source_id="s2", field_id="f2", source_type="erp"))
    runs.submit(tenant, "dataset_task", attrs(source_id="s1"))  # another kind: never listed
    runs.settle()

    def ids(**query: Any) -> list[str]:
        return [r["id"] for r in listing(client, auth, tenant_id=tenant, **query)]

    assert ids() == [str(s2), str(s1), str(none_)]  # most recent first
    assert ids(source_id="") == [str(none_)]
    assert ids(source_id="s1") == [str(s1)]
    assert ids(source_id="nope") == []
    assert ids(field_id="f2") == [str(s2)] == ids(source_type="erp", source_id="s2")
    assert ids(field_id="f1", source_type="crm") == [str(s1), str(none_)]
    assert ids(field_id="f2", source_id="s1") == []
    assert listing(client, auth, tenant_id=tenant, source_id="")[0]["source_id"] == ""


def test_limit_default_and_documented_bounds(
    client: TestClient, runs: Runs, auth: dict[str, str], tenant: str
) -> None:
    runs.submit_many(tenant, KIND, [attrs(source_id=f"s{i}") for i in range(51)])
    runs.settle()
    assert len(listing(client, auth, tenant_id=tenant)) == DEFAULT_LIMIT
    limit = QUERY["limit"]
    assert len(listing(client, auth, tenant_id=tenant, limit=limit["maximum"])) == 51
    assert len(listing(client, auth, tenant_id=tenant, limit=limit["minimum"])) == 1
    assert limit["maximum"] > DEFAULT_LIMIT  # so the listing of 51 below can see all of them
    too_long = QUERY["tenant_id"]["maxLength"] + 1
    rejected: list[dict[str, Any]] = [
        {"tenant_id": tenant, "limit": limit["minimum"] - 1},
        {"tenant_id": tenant, "limit": limit["maximum"] + 1},
        {},
        {"tenant_id": "t" * (QUERY["tenant_id"]["minLength"] - 1)},
        {"tenant_id": "t" * too_long},
        *(
            {"tenant_id": tenant, name: "x" * (QUERY[name]["maxLength"] + 1)}
            for name in ("field_id", "source_type", "source_id")
        ),
    ]
    for query in rejected:
        response = client.get(URL, params=query, headers=auth)
        assert response.status_code == 422, (query, response.text)


def test_a_tenant_not_granted_is_a_404_like_a_missing_run(
    client: TestClient, runs: Runs, auth: dict[str, str], tenant: str, engine: Engine
) -> None:
    other = f"{tenant}-other"
    runs.submit(other, KIND, attrs())
    runs.settle()
    missing_run = client.get(f"/v1/runs/{uuid.uuid4()}", headers=auth)
    denied = client.get(URL, params={"tenant_id": other}, headers=auth)
    assert denied.status_code == 404 and denied.json() == missing_run.json()
    create = {"tenant_id": other, **attrs(), "params": {}}
    assert client.post(URL, json=create, headers=auth).json() == missing_run.json()
    with engine.begin() as conn:
        granted_key, _ = keys.create(conn, tenant, "granted", grants=(other,))
    granted = {"X-API-Key": granted_key}
    assert len(listing(client, granted, tenant_id=other)) == 1
    assert client.post(URL, json=create, headers=granted).status_code == 201


def test_post_records_the_attributes_and_returns_the_run(
    client: TestClient, runs: Runs, auth: dict[str, str], tenant: str
) -> None:
    body = {**attrs(source_id="src-9", field_label="Region"), "tenant_id": tenant, "params": {"clusters": 8}}
    response = client.post(URL, json=body, headers=auth)
    assert response.status_code == 201, response.text
    created = response.json()
    check_documented_shape(created)
    # The kind's parameters as validated: what was sent, and the defaults the build will use.
    assert created["status"] == "pending" and created["params"]["clusters"] == 8
    assert created["params"]["embedder"] == "tfidf"
    assert {k: created[k] for k in ("field_id", "source_type", "source_id", "field_label")} == {
        "field_id": "f1",
        "source_type": "crm",
        "source_id": "src-9",
        "field_label": "Region",
    }
    runs.settle()
    assert listing(client, auth, tenant_id=tenant) == [created]
    without_field = {k: v for k, v in body.items() if k != "field_id"}
    for bad in ({**body, "extra": 1}, {**body, "tenant_id": ""}, without_field):
        assert client.post(URL, json=bad, headers=auth).status_code == 422
    assert client.post(URL, json=body).status_code == 401
    assert client.get(URL, params={"tenant_id": tenant}).status_code == 401
