"""Read-your-writes with no projector at all: every surface's get folds the run's stream.

The app runs on a database of its own where no projector ever runs, so the read models stay empty
(checkpoint 0): whatever a get answers here comes from the log.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from orchestrator.api.app import create_app
from orchestrator.settings import Settings
from orchestrator.store import keys
from orchestrator.store.engine import make_engine
from orchestrator.store.migrate import upgrade
from orchestrator.store.schema import runs
from tests import services

TENANT = "ryw"


@pytest.fixture(scope="module")
def unprojected(settings: Settings) -> Iterator[tuple[TestClient, dict[str, str], sa.Engine]]:
    with services.postgres_admin_url() as admin, services.fresh_database(admin) as url:
        upgrade(url)
        engine = make_engine(url, pool_size=4)
        with engine.begin() as conn:
            key, _ = keys.create(conn, TENANT, "test", ())
        # A queue nobody consumes: the runs stay as the test leaves them.
        own = settings.model_copy(update={"database_url": url, "queue_prefix": f"ryw{uuid.uuid4().hex[:8]}"})
        with TestClient(create_app(own, engine)) as client:
            yield client, {"Authorization": f"Bearer {key}"}, engine
        engine.dispose()


def _projected_rows(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar_one())


def test_twenty_runs_answer_200_right_after_their_201(
    unprojected: tuple[TestClient, dict[str, str], sa.Engine],
) -> None:
    client, auth, engine = unprojected
    for n in range(20):
        created = client.post("/v1/runs", json={"kind": "sleep", "params": {"duration": n}}, headers=auth)
        assert created.status_code == 201, created.text
        got = client.get(f"/v1/runs/{created.json()['id']}", headers=auth)
        assert got.status_code == 200, got.text
        assert got.json() == created.json()
        assert got.json()["params"]["duration"] == n and got.json()["status"] == "pending"
    assert _projected_rows(engine) == 0  # no projector ran: every answer came from the log


def test_cancel_then_get_shows_the_cancel(unprojected: tuple[TestClient, dict[str, str], sa.Engine]) -> None:
    client, auth, _ = unprojected
    run_id = client.post("/v1/runs", json={"kind": "sleep"}, headers=auth).json()["id"]
    canceled = client.post(f"/v1/runs/{run_id}/cancel", headers=auth)
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert client.get(f"/v1/runs/{run_id}", headers=auth).json()["status"] == "canceled"


def test_every_surface_get_folds_the_stream(
    unprojected: tuple[TestClient, dict[str, str], sa.Engine],
) -> None:
    client, auth, engine = unprojected
    body = {"taskName": "sleep", "context": {"duration": 0}}
    created = client.post("/api/v1/data-products/runs", json=body, headers=auth)
    assert created.status_code == 200, created.text
    run_id = created.json()["id"]
    detail = client.get(f"/api/v1/data-products/runs/{run_id}", headers=auth)
    assert detail.status_code == 200 and detail.json()["context"] == {
        "duration": 0,
        "steps": 1,
        "fail": False,
    }
    tree = client.get(f"/api/v1/data-products/runs/{run_id}/tree", headers=auth)
    assert tree.status_code == 200 and [r["id"] for r in tree.json()["items"]] == [run_id]
    canceled = client.post(f"/api/v1/data-products/runs/{run_id}/cancel", headers=auth)
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    taxonomy = {"tenant_id": TENANT, "field_id": "f", "source_type": "s", "source_id": ""}
    made = client.post("/v1/taxonomy/runs", json=taxonomy, headers=auth)
    assert made.status_code == 201 and made.json()["status"] == "pending" and made.json()["field_id"] == "f"
    assert _projected_rows(engine) == 0


def test_a_missing_run_is_still_404(unprojected: tuple[TestClient, dict[str, str], sa.Engine]) -> None:
    client, auth, _ = unprojected
    assert client.get(f"/v1/runs/{uuid.uuid4()}", headers=auth).status_code == 404
    assert client.get(f"/api/v1/data-products/runs/{uuid.uuid4()}", headers=auth).status_code == 404
    assert client.get(f"/api/v1/data-products/runs/{uuid.uuid4()}/tree", headers=auth).status_code == 404
