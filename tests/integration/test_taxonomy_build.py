"""Taxonomy builds through the API with the session's real worker: records in, a tree out; and the ways a
build ends otherwise (too few records, an unreachable embedder, a cancel), each in its documented state."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.services import wait_until
from tests.taxonomy_corpus import generate

pytestmark = pytest.mark.usefixtures("system")

URL = "/v1/taxonomy/runs"
TERMINAL = ("succeeded", "failed", "canceled")


def load(client: TestClient, auth: dict[str, str], records: int, topics: int = 4, field: str = "f") -> None:
    corpus = generate(records=records, topics=topics, seed=5)
    rows = [
        {
            "external_id": f"{field}-{i}",
            "text": text,
            "field_id": field,
            "field_label": "Ticket topic",
            "source_type": "ticket",
        }
        for i, text in enumerate(corpus.texts)
    ]
    for start in range(0, len(rows), 10_000):
        response = client.post("/v1/records", json={"records": rows[start : start + 10_000]}, headers=auth)
        assert response.status_code == 200, response.text


def submit(
    client: TestClient, auth: dict[str, str], tenant: str, params: dict[str, Any], field: str = "f"
) -> dict[str, Any]:
    body = {
        "tenant_id": tenant,
        "field_id": field,
        "source_type": "ticket",
        "source_id": "",
        "params": params,
    }
    response = client.post(URL, json=body, headers=auth)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def run_of(client: TestClient, auth: dict[str, str], tenant: str, run_id: str) -> dict[str, Any]:
    response = client.get(f"{URL}/{run_id}", params={"tenant_id": tenant}, headers=auth)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def finished(client: TestClient, auth: dict[str, str], tenant: str, run_id: str) -> dict[str, Any]:
    return wait_until(
        lambda: (run := run_of(client, auth, tenant, run_id))["status"] in TERMINAL and run,
        timeout=90,
        interval=0.2,
        message=f"taxonomy run {run_id} to finish",
    )


def test_a_build_stores_a_tree_the_routes_answer(
    app_client: TestClient, auth: dict[str, str], tenant: str
) -> None:
    load(app_client, auth, 600)
    created = submit(app_client, auth, tenant, {"clusters": 4, "min_cluster_size": 30, "seed": 1})
    assert created["field_label"] == "Ticket topic"
    run = finished(app_client, auth, tenant, created["id"])
    assert run["status"] == "succeeded", run
    nodes = app_client.get(f"{URL}/{run['id']}/nodes", params={"tenant_id": tenant}, headers=auth).json()[
        "data"
    ]
    top = [n for n in nodes if n["parent_id"] is None]
    assert len(top) == 4 and sum(n["size"] for n in top) == 600
    assert (run["record_count"], run["embedding_count"], run["cluster_count"], run["node_count"]) == (
        600,
        600,
        4,
        len(nodes),
    )
    assert {"read", "embed", "cluster", "label", "store"} <= set(run["metrics"]["phase_seconds"])
    assert all(n["label"] and n["top_terms"] and n["representative_record_ids"] for n in nodes)
    assigned: list[dict[str, Any]] = []
    cursor = None
    while True:
        query: dict[str, Any] = {"tenant_id": tenant, "limit": 250, **({"cursor": cursor} if cursor else {})}
        page = app_client.get(f"{URL}/{run['id']}/assignments", params=query, headers=auth).json()
        assigned += page["data"]
        if (cursor := page["next_cursor"]) is None:
            break
    assert len(assigned) == 600 and len({a["record_id"] for a in assigned}) == 600
    top_ids = {n["id"] for n in top}
    assert all(a["path"][0] in top_ids and a["path"][-1] == a["node_id"] for a in assigned)
    assert {a["external_id"] for a in assigned} == {f"f-{i}" for i in range(600)}
    listed = app_client.get(URL, params={"tenant_id": tenant}, headers=auth).json()["data"]
    assert [r["id"] for r in listed] == [run["id"]]


def test_too_few_records_fail_insufficient_data_without_retries(
    app_client: TestClient, auth: dict[str, str], tenant: str
) -> None:
    load(app_client, auth, 5)
    run = finished(app_client, auth, tenant, submit(app_client, auth, tenant, {})["id"])
    assert (run["status"], run["error_code"], run["record_count"]) == ("failed", "insufficient_data", 5)
    events = app_client.get(f"/v1/runs/{run['id']}/events", headers=auth).json()["data"]
    assert not [e for e in events if e["type"] == "AttemptFailed"]


def test_an_unreachable_embedder_fails_service_unavailable_after_retries(
    app_client: TestClient, auth: dict[str, str], tenant: str
) -> None:
    load(app_client, auth, 50)
    run = finished(app_client, auth, tenant, submit(app_client, auth, tenant, {"embedder": "remote"})["id"])
    assert (run["status"], run["error_code"]) == ("failed", "service_unavailable"), run
    assert "unreachable" in run["error"]
    events = app_client.get(f"/v1/runs/{run['id']}/events", headers=auth).json()["data"]
    retried = [e for e in events if e["type"] == "AttemptFailed"]
    assert len(retried) >= 1 and all(e["data"]["error_code"] == "service_unavailable" for e in retried)


@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is not None,
    reason="the `embeddings` extra is installed here, so minilm is not refused",
)
def test_minilm_without_the_extra_is_refused_naming_it(
    app_client: TestClient, auth: dict[str, str], tenant: str
) -> None:
    body = {
        "tenant_id": tenant,
        "field_id": "f",
        "source_type": "t",
        "source_id": "",
        "params": {"embedder": "minilm"},
    }
    response = app_client.post(URL, json=body, headers=auth)
    assert response.status_code == 422
    assert "embeddings" in response.text and response.json()["detail"][0]["loc"][:3] == [
        "body",
        "params",
        "embedder",
    ]


def test_a_cancel_mid_build_ends_it_canceled(
    app_client: TestClient, auth: dict[str, str], tenant: str
) -> None:
    load(app_client, auth, 20_000, topics=8)
    created = submit(app_client, auth, tenant, {"clusters": "auto", "max_depth": 3, "min_cluster_size": 20})
    wait_until(
        lambda: run_of(app_client, auth, tenant, created["id"])["status"] != "pending",
        timeout=60,
        message="the build to start",
    )
    assert app_client.post(f"/v1/runs/{created['id']}/cancel", headers=auth).status_code == 200
    run = finished(app_client, auth, tenant, created["id"])
    assert run["status"] == "canceled", run
    nodes = app_client.get(f"{URL}/{run['id']}/nodes", params={"tenant_id": tenant}, headers=auth).json()
    assert nodes["data"] == []  # canceled before it stored anything
