"""Contract: POST /v1/list-jobs against its description (surfaces/list_jobs.json): the reference page, and
the request names the seeds README fixes where the page names none.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from orchestrator.store.schema import runs as runs_table
from tests.contract import surfaces
from tests.contract.helpers import STATES, Runs

pytestmark = pytest.mark.usefixtures("system")

KINDS = ("corpus_rebuild_vector_index", "corpus_replace_filter_attrs")
LIST = surfaces.operation("list_jobs", "list_jobs")
URL = LIST["path"]
OBJECTS = surfaces.objects("list_jobs")
FILTERS = OBJECTS[LIST["body"]]
REPLY = OBJECTS[LIST["response"]]
STATUS = OBJECTS[REPLY["status"]["items"]["ref"]]
JOB = OBJECTS[REPLY["job"]["items"]["ref"]]
JOB_TYPES = JOB["type"]["enum"]
JOB_STATES = JOB["state"]["enum"]
CODES = STATUS["code"]["enum"]
MAX_RESULTS = FILTERS["numResults"]["maximum"]
MAX_DAYS = FILTERS["epochSecs"]["maxAgeDays"]
REQUIRED_JOB_FIELDS = surfaces.required(JOB)  # the ts* "Not set" ones may be absent
DAY = 86_400
DEFAULT_RESULTS = 20  # the page names no default for numResults; 20 is ours


def test_the_description_is_whole() -> None:
    assert len(JOB_TYPES) == 3 and len(JOB_STATES) == 7 and len(CODES) > 100
    assert {"OK", "INVALID_ARGUMENT", "UNAUTHENTICATED", "NOT_FOUND", "UNAVAILABLE"} <= set(CODES)
    assert set(REPLY) == {"status", "job", "pageKey"} and set(STATUS) == {"code", "statusDetail"}
    assert set(JOB) > REQUIRED_JOB_FIELDS == {"id", "type", "corpusId", "state", "tsCreate"}
    assert list(FILTERS) == ["jobId", "corpusId", "epochSecs", "state", "numResults", "pageKey"]
    assert FILTERS["state"]["items"]["enum"] == JOB_STATES
    assert FILTERS["state"]["default"] == ["JOB_STATE__QUEUED", "JOB_STATE__STARTED"]
    assert (MAX_RESULTS, MAX_DAYS) == (100, 180)


def post(client: TestClient, auth: dict[str, str], body: Any) -> dict[str, Any]:
    response = client.post(URL, json=body, headers=auth)
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    surfaces.check_object(reply, REPLY)
    assert reply["status"] == [{"code": "OK", "statusDetail": ""}]
    for job in reply["job"]:
        surfaces.check_object(job, JOB)
    return reply


def rejected(client: TestClient, auth: dict[str, str], status: int = 400, **kw: Any) -> str:
    """The error's statusDetail, after checking the surface's error shape and the document's code."""
    response = client.post(URL, headers=auth, **kw)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == surfaces.required(REPLY) and body["job"] == []
    [entry] = body["status"]
    surfaces.check_object(entry, STATUS)
    assert entry["code"] == {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED"}[status]
    return str(entry["statusDetail"])


def ids(reply: dict[str, Any]) -> list[str]:
    return [job["id"] for job in reply["job"]]


def test_every_type_and_state_with_documented_fields(
    client: TestClient, runs: Runs, auth: dict[str, str], tenant: str
) -> None:
    attributes = {"corpus_ids": [7, 9], "user_handle": "ada"}
    made = {
        (kind, state): runs.make(tenant, kind, state, attributes=attributes)
        for kind in KINDS
        for state in STATES
    }
    runs.settle()
    reply = post(client, auth, {"state": JOB_STATES, "numResults": MAX_RESULTS})
    assert "pageKey" not in reply or not reply["pageKey"]
    jobs = {UUID(job["id"]): job for job in reply["job"]}
    assert set(jobs) == set(made.values())
    assert {job["type"] for job in jobs.values()} == set(JOB_TYPES) - {"JOB__UNKNOWN"}
    assert {job["state"] for job in jobs.values()} == set(JOB_STATES) - {"JOB_STATE__UNKNOWN"}
    expected = {
        "pending": "JOB_STATE__QUEUED",
        "running": "JOB_STATE__STARTED",
        "retrying": "JOB_STATE__TRANSIENT_FAILURE_RETRY_IMMINENT",
        "succeeded": "JOB_STATE__COMPLETED",
        "failed": "JOB_STATE__FAILED",
        "canceled": "JOB_STATE__ABORTED",
    }
    for (kind, state), run_id in made.items():
        job = jobs[run_id]
        assert job["state"] == expected[state] and job["type"] == f"JOB__{kind.upper()}"
        assert job["corpusId"] == [7, 9] and job["userHandle"] == "ada"
        assert ("tsStart" in job) == (state not in ("pending", "canceled")), job
        assert ("tsComplete" in job) == (state in ("succeeded", "failed", "canceled")), job
        assert int(job["tsCreate"]) <= int(job.get("tsStart", job["tsCreate"])) <= int(time.time())
    for state in JOB_STATES:
        assert {j["state"] for j in post(client, auth, {"state": [state]})["job"]} <= {state}


def test_filters_default_to_queued_and_started_and_are_anded(
    client: TestClient, runs: Runs, auth: dict[str, str], tenant: str
) -> None:
    queued = runs.make(tenant, KINDS[0], "pending", attributes={"corpus_ids": [1]})
    started = runs.make(tenant, KINDS[1], "running", attributes={"corpus_ids": [2, 3]})
    runs.make(tenant, KINDS[0], "succeeded", attributes={"corpus_ids": [1]})
    runs.make(f"{tenant}-other", KINDS[0], "pending", attributes={"corpus_ids": [1]})
    runs.make(tenant, "dataset_task", "pending", attributes={"corpus_ids": [1]})
    runs.settle()
    assert ids(post(client, auth, {})) == [str(started), str(queued)]
    assert ids(post(client, auth, {"state": []})) == [str(started), str(queued)]
    assert ids(post(client, auth, {"corpusId": [3, 4]})) == [str(started)]
    assert ids(post(client, auth, {"corpusId": [1], "state": ["JOB_STATE__QUEUED"]})) == [str(queued)]
    assert ids(post(client, auth, {"corpusId": [2], "state": ["JOB_STATE__QUEUED"]})) == []
    assert ids(post(client, auth, {"jobId": str(queued)})) == [str(queued)]
    assert ids(post(client, auth, {"jobId": str(queued), "corpusId": [2]})) == []
    assert ids(post(client, auth, {"jobId": "not-a-job-id"})) == []
    assert ids(post(client, auth, {"epochSecs": int(time.time()) + 3600})) == []
    assert len(ids(post(client, auth, {"epochSecs": int(time.time()) - (MAX_DAYS - 1) * DAY}))) == 2
    assert ids(post(client, auth, {"numResults": 1})) == [str(started)]


def test_invalid_arguments_are_400_in_the_surface_shape(client: TestClient, auth: dict[str, str]) -> None:
    too_old = int(time.time()) - (MAX_DAYS + 1) * DAY
    assert f"{MAX_DAYS} days" in rejected(client, auth, json={"epochSecs": too_old})
    bodies: list[Any] = [
        {"numResults": 0},
        {"numResults": MAX_RESULTS + 1},
        {"num_results": 5},
        {"unknown": True},
        {"state": ["JOB_STATE__NOPE"]},
        {"corpusId": "7"},
        {"epochSecs": 10**15},
        [],
    ]
    for body in bodies:
        assert rejected(client, auth, json=body), body
    json_headers = {**auth, "content-type": "application/json"}
    assert "JSON" in rejected(client, json_headers, content=b"{nope")
    for name in FILTERS:  # every name the README fixes is accepted (none is an "extra" field)
        assert "Extra inputs" not in rejected(client, auth, json={name: {}})


def test_unauthenticated_is_401_in_the_surface_shape(client: TestClient) -> None:
    assert rejected(client, {}, status=401, json={})
    assert rejected(client, {"Authorization": "Bearer orch_nope"}, status=401, json={"numResults": 0})


def test_page_keys_are_signed_and_bound_to_the_account(
    client: TestClient, runs: Runs, auth: dict[str, str], tenant: str, make_key: Callable[[str], str]
) -> None:
    for _ in range(3):
        runs.make(tenant, KINDS[0], "pending")
    runs.settle()
    key = post(client, auth, {"numResults": 1})["pageKey"]
    assert post(client, auth, {"pageKey": key, "numResults": 50, "state": ["JOB_STATE__FAILED"]})["pageKey"]
    raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    tampered = raw.replace(b'"numResults":1', b'"numResults":9')
    assert tampered != raw
    forged = base64.urlsafe_b64encode(tampered).decode().rstrip("=")
    other = {"X-API-Key": make_key(f"{tenant}-other")}
    for bad, headers in ((forged, auth), ("garbage", auth), ("", auth), (key[:-2], auth), (key, other)):
        if bad == "":
            continue  # an empty key asks for the first page
        assert "pageKey" in rejected(client, headers, json={"pageKey": bad}), bad


def test_page_keys_walk_1000_jobs_without_duplicate_or_gap_while_jobs_arrive(
    client: TestClient, runs: Runs, auth: dict[str, str], tenant: str, engine: Engine
) -> None:
    attributes = [{"corpus_ids": [n % 7], "user_handle": f"u{n}"} for n in range(1000)]
    made = runs.submit_many(tenant, KINDS[0], attributes)
    runs.settle()
    stop, arrived = threading.Event(), list[UUID]()

    def keep_submitting() -> None:
        while not stop.is_set():
            arrived.append(runs.submit(tenant, KINDS[1], {"corpus_ids": [1]}))

    default = post(client, auth, {})
    assert len(default["job"]) == DEFAULT_RESULTS and default["pageKey"]
    # The list is what exists at the first page; jobs arriving later sort before every page key.
    reply = post(client, auth, {"numResults": MAX_RESULTS})
    writer = threading.Thread(target=keep_submitting)
    writer.start()
    try:
        walked: list[UUID] = []
        while True:
            walked += [UUID(job["id"]) for job in reply["job"]]
            time.sleep(0.02)  # let the writer land runs between pages
            if not reply.get("pageKey"):
                break
            reply = post(client, auth, {"pageKey": reply["pageKey"]})
        stop.set()
        writer.join()
        assert len(walked) == len(set(walked)) == 1000 and set(walked) == set(made)
        newest_first = runs_table.c.created_at.desc(), runs_table.c.id.desc()
        with engine.connect() as conn:
            query = sa.select(runs_table.c.id).where(runs_table.c.id.in_(made)).order_by(*newest_first)
            assert walked == list(conn.execute(query).scalars())
        assert arrived, "no job arrived during the walk"
        runs.settle()
        assert ids(post(client, auth, {"numResults": 1})) == [str(arrived[-1])]
    finally:
        stop.set()
        writer.join()
        runs.cancel_all([*made, *arrived])
