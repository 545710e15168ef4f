"""Runs in bulk and again: `POST /v1/runs:cancel` over the list filters, each run's outcome reported and
bounded per call; `POST /v1/runs/{id}:retry` as a new run linked to the old one; the CLI over both."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from orchestrator.api.app import create_app
from orchestrator.cli import app as cli
from orchestrator.domain.commands import Fail, StartAttempt
from orchestrator.services import RunService
from orchestrator.settings import Settings
from schemas.runs import ErrorCode
from tests.services import placeholder_params, serving, wait_until

pytestmark = pytest.mark.usefixtures("system")  # its projector fills the read model bulk cancel selects from


@pytest.fixture(scope="module")
def idle_settings(settings: Settings) -> Settings:
    """A queue no worker consumes: runs stay pending until this test moves them."""
    return settings.model_copy(
        update={"queue_prefix": f"bulk{uuid.uuid4().hex[:8]}", "lease_seconds": 3600.0}
    )


@pytest.fixture(scope="module")
def idle_client(idle_settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(idle_settings, engine)) as client:
        yield client


def _submit(client: TestClient, auth: dict[str, str], kind: str = "sleep", parent: str | None = None) -> str:
    body: dict[str, Any] = {"kind": kind, "params": placeholder_params(kind) or {"duration": 30}}
    if parent:
        body["parent_run_id"] = parent
    answer = client.post("/v1/runs", json=body, headers=auth)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _listed(client: TestClient, auth: dict[str, str], **filters: Any) -> dict[str, dict[str, Any]]:
    page = client.get("/v1/runs", params={"limit": 100, **filters}, headers=auth).json()
    return {run["id"]: run for run in page["data"]}


def _projected(client: TestClient, auth: dict[str, str], expected: dict[str, str]) -> None:
    """Wait until the read model shows these runs with these statuses."""

    def shown() -> bool:
        runs = _listed(client, auth)
        return all(r in runs and runs[r]["status"] == s for r, s in expected.items())

    wait_until(shown, timeout=15, message=f"the read model to show {expected}")


def test_bulk_cancel_matches_the_list_filters_and_reports_each_run(
    idle_client: TestClient, idle_settings: Settings, engine: Engine, auth: dict[str, str], make_key: Any
) -> None:
    root = _submit(idle_client, auth)
    child = _submit(idle_client, auth, parent=root)
    pending = _submit(idle_client, auth)
    running = _submit(idle_client, auth)
    other_kind = _submit(idle_client, auth, kind="workflow")
    RunService(engine, idle_settings).execute(uuid.UUID(running), StartAttempt(attempt=1, worker="w"))
    elsewhere = make_key(f"other-{uuid.uuid4().hex[:8]}")
    stranger = _submit(idle_client, {"Authorization": f"Bearer {elsewhere}"})
    _projected(idle_client, auth, {root: "pending", child: "pending", pending: "pending", running: "running"})

    first = idle_client.post("/v1/runs:cancel", json={"kind": "sleep", "limit": 2}, headers=auth)
    assert first.status_code == 200, first.text
    body = first.json()
    # Newest first: the running run is asked to stop, the pending one ends at once; two more remain.
    assert body["data"] == [
        {"run_id": running, "outcome": "cancel_requested"},
        {"run_id": pending, "outcome": "canceled"},
    ]
    assert (body["matched"], body["more"]) == (4, True)
    _projected(idle_client, auth, {pending: "canceled"})

    # root_only: the root is canceled, and its child with it (the cascade of RunService.cancel).
    second = idle_client.post("/v1/runs:cancel", json={"kind": "sleep", "root_only": True}, headers=auth)
    assert second.json() == {"data": [{"run_id": root, "outcome": "canceled"}], "matched": 1, "more": False}
    _projected(idle_client, auth, {root: "canceled", child: "canceled", other_kind: "pending"})
    assert (
        idle_client.get(f"/v1/runs/{stranger}", headers={"Authorization": f"Bearer {elsewhere}"}).json()[
            "status"
        ]
        == "pending"
    ), "another tenant's run is never touched"

    # Nothing live is left of kind sleep; a running run asked once is not selected again.
    third = idle_client.post("/v1/runs:cancel", json={"kind": "sleep"}, headers=auth).json()
    assert third == {"data": [], "matched": 0, "more": False}


@pytest.mark.parametrize(
    "body",
    [{"status": "succeeded"}, {"limit": 0}, {"limit": 1001}, {"kind": "x" * 65}, {"unknown": 1}],
)
def test_bulk_cancel_refuses_bad_filters(idle_client: TestClient, auth: dict[str, str], body: Any) -> None:
    answer = idle_client.post("/v1/runs:cancel", json=body, headers=auth)
    assert answer.status_code == 422 and isinstance(answer.json()["detail"], list)


def test_retry_creates_a_linked_run_and_only_for_finished_runs(
    idle_client: TestClient, idle_settings: Settings, engine: Engine, auth: dict[str, str], make_key: Any
) -> None:
    failed = _submit(idle_client, auth)
    service = RunService(engine, idle_settings)
    service.execute(uuid.UUID(failed), StartAttempt(attempt=1, worker="w"))
    service.execute(uuid.UUID(failed), Fail(attempt=1, error_code=ErrorCode.INTERNAL_ERROR, error="boom"))

    retried = idle_client.post(f"/v1/runs/{failed}:retry", headers=auth)
    assert retried.status_code == 201, retried.text
    new = retried.json()
    assert new["retry_of"] == failed and new["status"] == "pending" and new["id"] != failed
    assert new["params"]["duration"] == 30 and new["parent_id"] is None
    assert retried.headers["location"] == f"/v1/runs/{new['id']}"
    events = idle_client.get(f"/v1/runs/{new['id']}/events", headers=auth).json()["data"]
    assert events[0]["type"] == "RunCreated" and events[0]["data"]["retry_of"] == failed

    # A live run is not retried: 409; another tenant's run and an unknown one are 404.
    live = idle_client.post(f"/v1/runs/{new['id']}:retry", headers=auth)
    assert live.status_code == 409 and live.json()["error_code"] == "illegal_transition"
    other = {"Authorization": f"Bearer {make_key(f'other-{uuid.uuid4().hex[:8]}')}"}
    assert idle_client.post(f"/v1/runs/{failed}:retry", headers=other).status_code == 404
    assert idle_client.post(f"/v1/runs/{uuid.uuid4()}:retry", headers=auth).status_code == 404

    # A canceled run is retried too, and an Idempotency-Key makes the retry itself safe to repeat.
    canceled = _submit(idle_client, auth)
    idle_client.post(f"/v1/runs/{canceled}/cancel", headers=auth)
    keyed = {**auth, "Idempotency-Key": f"retry-{canceled}"}
    once = idle_client.post(f"/v1/runs/{canceled}:retry", headers=keyed)
    again = idle_client.post(f"/v1/runs/{canceled}:retry", headers=keyed)
    assert (once.status_code, again.status_code) == (201, 200)
    assert once.json()["id"] == again.json()["id"]

    # The old run lists its retries once the read model holds them.
    _projected(idle_client, auth, {new["id"]: "pending"})
    old = idle_client.get(f"/v1/runs/{failed}", headers=auth).json()
    assert old["retried_by"] == [new["id"]] and old["retry_of"] is None
    assert _listed(idle_client, auth)[failed]["retried_by"] is None, "lists do not look retries up"


@pytest.fixture(scope="module")
def idle_url(idle_settings: Settings, engine: Engine) -> Iterator[str]:
    with serving(idle_settings, engine) as url:
        yield url


def test_the_cli_cancels_in_bulk_and_retries(
    idle_url: str, idle_client: TestClient, auth: dict[str, str], make_key: Any, tenant: str
) -> None:
    runs = [_submit(idle_client, auth) for _ in range(3)]
    _projected(idle_client, auth, dict.fromkeys(runs, "pending"))
    key = auth["Authorization"].removeprefix("Bearer ")
    target = ["--url", idle_url, "--key", key]
    runner = CliRunner()

    refused = runner.invoke(cli, ["runs", "cancel", *target])
    assert refused.exit_code == 2 and "--all" in refused.output

    bulk = runner.invoke(cli, ["runs", "cancel", "--status", "pending", "--kind", "sleep", "--json", *target])
    assert bulk.exit_code == 0, bulk.output
    outcomes = json.loads(bulk.stdout)["data"]
    assert sorted(o["run_id"] for o in outcomes) == sorted(runs)
    assert {o["outcome"] for o in outcomes} == {"canceled"}

    retry = runner.invoke(cli, ["runs", "retry", runs[0], "--json", *target])
    assert retry.exit_code == 0, retry.output
    assert json.loads(retry.stdout)["retry_of"] == runs[0]
