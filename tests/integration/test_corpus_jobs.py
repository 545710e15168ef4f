"""Corpus jobs through the API with the session's real worker: a rebuilt vector index answers queries (each
record's own text finds it first), the list-jobs surface shows the job with its fields filled."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.services import wait_until
from tests.taxonomy_corpus import generate

pytestmark = pytest.mark.usefixtures("system")

RECORDS = 1500


def _load(client: TestClient, auth: dict[str, str]) -> list[dict[str, Any]]:
    corpus = generate(records=RECORDS, topics=10, seed=9)
    rows = [
        {
            "external_id": f"doc-{i}",
            "text": text,
            "field_id": "body",
            "source_type": "kb",
            "corpus_key": "kb",
            "metadata": {"lang": "fr" if i % 3 == 0 else "en"},
        }
        for i, text in enumerate(corpus.texts)
    ]
    assert client.post("/v1/records", json={"records": rows}, headers=auth).status_code == 200
    return rows


def _finished(client: TestClient, auth: dict[str, str], run_id: str) -> dict[str, Any]:
    return wait_until(
        lambda: (
            (run := client.get(f"/v1/runs/{run_id}", headers=auth).json())["status"]
            in ("succeeded", "failed", "canceled")
            and run
        ),
        timeout=90,
        interval=0.2,
        message=f"corpus job {run_id}",
    )


def test_a_rebuilt_index_finds_each_record_by_its_own_text(
    app_client: TestClient, auth: dict[str, str]
) -> None:
    created = app_client.post(
        "/v1/corpora", json={"key": "kb", "name": "KB", "filter_attributes": ["lang"]}, headers=auth
    )
    corpus_id = created.json()["id"]
    rows = _load(app_client, auth)
    early = app_client.post("/v1/corpora/kb/query", json={"text": rows[0]["text"]}, headers=auth)
    assert early.status_code == 409  # no index yet
    job = app_client.post(
        "/v1/corpora/kb/jobs", json={"type": "JOB__CORPUS_REBUILD_VECTOR_INDEX"}, headers=auth
    )
    assert job.status_code == 201, job.text
    run = _finished(app_client, auth, job.json()["id"])
    assert run["status"] == "succeeded", run
    version = run["result"]["index_version"]
    assert app_client.get("/v1/corpora", headers=auth).json()["data"][0]["index_version"] == version

    sample = random.Random(4).sample(rows, 200)
    first = 0
    for row in sample:
        answer = app_client.post(
            "/v1/corpora/kb/query", json={"text": row["text"], "k": 3}, headers=auth
        ).json()
        assert answer["index_version"] == version and len(answer["data"]) == 3
        first += answer["data"][0]["external_id"] == row["external_id"]
    assert first >= 190, f"only {first} of 200 found themselves first"

    french = app_client.post(
        "/v1/corpora/kb/query",
        json={"text": rows[1]["text"], "k": 10, "filter": {"lang": "fr"}},
        headers=auth,
    ).json()["data"]
    assert len(french) == 10 and all(int(hit["external_id"].split("-")[1]) % 3 == 0 for hit in french)
    undeclared = app_client.post(
        "/v1/corpora/kb/query", json={"text": "x", "filter": {"color": "red"}}, headers=auth
    )
    assert undeclared.status_code == 422

    listed = app_client.post("/v1/list-jobs", json={"state": ["JOB_STATE__COMPLETED"]}, headers=auth).json()
    (entry,) = [j for j in listed["job"] if j["id"] == run["id"]]
    assert entry["type"] == "JOB__CORPUS_REBUILD_VECTOR_INDEX" and entry["corpusId"] == [corpus_id]
    assert entry["userHandle"] and entry["tsStart"] and entry["tsComplete"]


def test_jobs_and_queries_of_an_unknown_corpus_are_404(
    app_client: TestClient, auth: dict[str, str], make_key: Callable[[str], str]
) -> None:
    app_client.post("/v1/corpora", json={"key": "mine", "name": "Mine"}, headers=auth)
    other = {"Authorization": f"Bearer {make_key(f'tenant-{uuid.uuid4().hex[:10]}')}"}
    foreign = app_client.post("/v1/corpora/mine/query", json={"text": "x"}, headers=other)
    assert foreign.status_code == 404  # a key names a corpus of the caller's own tenant only
    job = app_client.post(
        "/v1/corpora/nope/jobs", json={"type": "JOB__CORPUS_REBUILD_VECTOR_INDEX"}, headers=auth
    )
    query = app_client.post("/v1/corpora/nope/query", json={"text": "x"}, headers=auth)
    assert job.status_code == query.status_code == 404


def test_replace_filter_attrs_rewrites_metadata_and_keeps_the_index(
    app_client: TestClient, auth: dict[str, str]
) -> None:
    app_client.post(
        "/v1/corpora", json={"key": "kb", "name": "KB", "filter_attributes": ["lang"]}, headers=auth
    )
    rows = _load(app_client, auth)
    body = {
        "type": "JOB__CORPUS_REPLACE_FILTER_ATTRS",
        "params": {"filter_attributes": ["lang", "tier"], "defaults": {"tier": "free"}, "batch_size": 400},
    }
    job = app_client.post("/v1/corpora/kb/jobs", json=body, headers=auth)
    assert job.status_code == 201, job.text
    run = _finished(app_client, auth, job.json()["id"])
    assert run["status"] == "succeeded" and run["result"]["record_count"] == len(rows), run
    (corpus,) = app_client.get("/v1/corpora", headers=auth).json()["data"]
    assert corpus["filter_attributes"] == ["lang", "tier"] and corpus["index_version"] is None
    listed = app_client.get("/v1/records", params={"corpus_key": "kb", "limit": 1000}, headers=auth).json()[
        "data"
    ]
    assert all(r["metadata"]["tier"] == "free" and r["version"] == 2 for r in listed)
    events = app_client.get(f"/v1/runs/{run['id']}/events", headers=auth).json()["data"]
    assert sum(e["type"] == "CheckpointRecorded" for e in events) == -(-len(rows) // 400)
    bad = {"type": "JOB__CORPUS_REPLACE_FILTER_ATTRS", "params": {"batch_size": 0}}
    assert app_client.post("/v1/corpora/kb/jobs", json=bad, headers=auth).status_code == 422
