"""An `embed` dataset run end to end with a real worker: every record back with a unit vector from one
model fitted on the first lines, the bad line in the side file, and the surfaces' fields filled."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from orchestrator.datasets.published import ALL_TASKS
from orchestrator.settings import Settings
from orchestrator.storage import bucket_name
from tests.integration.dataset_helpers import local_path, put_file, register, start, task_run, wait_terminal

pytestmark = pytest.mark.usefixtures("system")

TOPICS = {
    "pets": ["the cat chased the mouse", "a kitten sleeps by the cat", "the dog and the cat play"],
    "markets": ["stock markets fell today", "investors sold stock and bonds", "bond yields rose again"],
}


def topical_lines(count: int, bad_at: int) -> bytes:
    """JSONL alternating between the two topics, the same few texts again and again; line `bad_at` has
    no text."""
    rows = []
    for i in range(1, count + 1):
        topic = "pets" if i % 2 else "markets"
        text = TOPICS[topic][i % 3]
        rows.append({"i": i, "title": f"no {i}"} if i == bad_at else {"i": i, "topic": topic, "text": text})
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def test_an_embed_run_adds_one_models_unit_vector_to_every_record(
    app_client: TestClient, auth: dict[str, str], settings: Settings, tenant: str
) -> None:
    feature = register(app_client, auth, put_file(settings, tenant, "in/topics.jsonl", topical_lines(241, 7)))
    context = {"chunkLines": 60, "fitLines": 100, "dimensions": 16, "seed": 3}
    run_id = start(app_client, auth, feature["id"], task="embed", context=context, run_name="vectors")
    run = wait_terminal(app_client, auth, run_id)
    assert run["status"] == "succeeded", run
    result = run["result"]
    assert (result["line_count"], result["bad_lines"], result["model_fitted_by_attempt"]) == (240, 1, 1)

    answer = app_client.get(f"/v1/task-runs/{run_id}/result", headers=auth)
    records = [json.loads(line) for line in answer.text.splitlines()]
    assert [r["i"] for r in records] == [i for i in range(1, 242) if i != 7]
    assert {k for r in records for k in r} == {"i", "topic", "text", "embedding"}, "input fields kept"
    vectors = np.array([r["embedding"] for r in records])
    assert vectors.shape == (240, 16) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    by_text: dict[str, list[list[float]]] = {}
    for record in records:
        by_text.setdefault(record["text"], []).append(record["embedding"])
    # Each text recurs in every chunk of 60 lines: one model embedded them all, so its vectors are equal.
    assert all(len(found) >= 40 and all(v == found[0] for v in found) for found in by_text.values())
    first = {topic: np.array(by_text[texts[0]][0]) for topic, texts in TOPICS.items()}
    second = {topic: np.array(by_text[texts[1]][0]) for topic, texts in TOPICS.items()}
    assert first["pets"] @ second["pets"] > first["pets"] @ second["markets"], "a topic's texts are closer"

    errors = local_path(settings, tenant, result["errors_file_path"]).read_text().splitlines()
    assert [(e["line"], e["error"]) for e in map(json.loads, errors)] == [(7, "no text at field 'text'")]
    assert not local_path(settings, tenant, f"work/{run_id}").exists(), "parts and model removed"
    surface = task_run(app_client, auth, run_id)
    assert surface == {
        **surface,
        "run_name": "vectors",
        "task_id": str(ALL_TASKS["embed"].id),
        "task_name": "embed",
        "feature_id": feature["id"],
        "status": "completed",
        "result_bucket": bucket_name(tenant),
        "result_file_path": result["result_file_path"],
        "line_count": 240,
        "fail_message": None,
    }
    events = app_client.get(f"/v1/runs/{run_id}/events", headers=auth).json()["data"]
    checkpoints = [e["data"]["data"] for e in events if e["type"] == "CheckpointRecorded"]
    assert [c["chunks"] for c in checkpoints] == [0, 1, 2, 3, 4, 5], "the model's checkpoint, then a chunk's"
    assert {c["model_sha256"] for c in checkpoints} == {result["model_sha256"]}


def test_embed_is_listed_with_its_variables_and_a_bad_one_is_a_422(
    app_client: TestClient, auth: dict[str, str], settings: Settings, tenant: str
) -> None:
    tasks = app_client.get("/api/v1/data-products/tasks", headers=auth).json()["items"]
    embed = next(t for t in tasks if t["name"] == "embed")
    assert embed["id"] == str(ALL_TASKS["embed"].id)
    assert {"textField", "vectorField", "dimensions", "fitLines", "seed", "featureId"} <= {
        v["name"] for v in embed["contextVars"]
    }
    feature = register(app_client, auth, put_file(settings, tenant, "in/few.jsonl", topical_lines(3, 0)))
    for context, variable in (({"dimensions": 1}, "dimensions"), ({"fitLines": "many"}, "fitLines")):
        answer = app_client.post(
            f"/v1/features/{feature['id']}/runs", json={"task": "embed", "context": context}, headers=auth
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"] == ["body", "context", variable]
