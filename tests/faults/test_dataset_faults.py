"""A dataset run whose worker is SIGKILLed mid-run still finishes, with every input line in its result
exactly once, and its events show the attempt after the crash starting after the last checkpoint; an
`embed` run's attempt after the crash embeds with the model the first attempt fitted."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import sqlalchemy as sa

from orchestrator.services import SubmitRequest
from orchestrator.storage import Storage
from orchestrator.store.schema import events, runs
from tests.faults.harness import FaultSystem, check_invariant
from tests.integration.dataset_helpers import people
from tests.services import wait_until
from workers.jobs import dataset_model

MakeSystem = Callable[..., FaultSystem]


def _started(make_system: MakeSystem) -> FaultSystem:
    system = make_system(lease_seconds=3.0, lease_renew_seconds=0.5)
    for role in ("relay", "project", "reconcile", "worker"):
        system.start(role)
    return system


def _submit(system: FaultSystem, tenant: str, lines: int, **params: Any) -> tuple[uuid.UUID, Storage]:
    storage = Storage.from_settings(system.settings)
    url = storage.object_url(tenant, "in/people.jsonl")
    storage.write_stream(url, iter([people(lines)]))
    request = SubmitRequest(
        tenant_id=tenant, kind="dataset_task", params={"task": "redact", "input_url": url, **params}
    )
    return system.service.submit(request).run_id, storage


def _log(system: FaultSystem, run_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    with system.engine.connect() as conn:
        rows = conn.execute(
            sa.select(events.c.type, events.c.data)
            .where(events.c.stream_id == run_id)
            .order_by(events.c.version)
        )
        return [(t, d) for t, d in rows]


def _result_lines(storage: Storage, tenant: str, result: dict[str, Any]) -> list[int]:
    path = Path(storage.object_url(tenant, result["result_file_path"]).removeprefix("file://"))
    text = path.read_text()
    assert "@" not in text
    return [json.loads(line)["i"] for line in text.splitlines()]


def _progress_by_attempt(log: list[tuple[str, dict[str, Any]]]) -> dict[int, list[int]]:
    done: dict[int, list[int]] = {}
    for event_type, data in log:
        if event_type == "ProgressReported":
            done.setdefault(data["attempt"], []).append(data["done"])
    return done


def test_a_crash_after_a_checkpoint_resumes_after_it(make_system: MakeSystem, tenant: str) -> None:
    system = _started(make_system)
    run_id, storage = _submit(system, tenant, 3000, chunk_lines=500, crash_after_chunk=3)
    system.wait_all_terminal(tenant, timeout=60)
    log = _log(system, run_id)
    assert log[-1][0] == "RunSucceeded", [t for t, _ in log]
    assert [t for t, _ in log].count("AttemptLost") == 1
    assert _progress_by_attempt(log) == {1: [500, 1000, 1500], 2: [2000, 2500, 3000]}
    checkpoints = [d["data"] for t, d in log if t == "CheckpointRecorded"]
    assert [c["chunks"] for c in checkpoints] == [1, 2, 3, 4, 5, 6]
    assert checkpoints[-1]["writers"] == [[0, 1], [3, 2]], "chunks 0-2 by attempt 1, the rest by attempt 2"
    assert _result_lines(storage, tenant, log[-1][1]["result"]) == list(range(1, 3001))
    check_invariant(system, tenant, [run_id])


def test_an_embed_run_resumed_after_a_crash_embeds_every_chunk_with_one_model(
    make_system: MakeSystem, tenant: str
) -> None:
    system = _started(make_system)
    config = {"textField": "note", "fitLines": 300, "dimensions": 8, "seed": 5}
    run_id, storage = _submit(
        system, tenant, 1000, task="embed", config=config, chunk_lines=200, crash_after_chunk=2
    )
    system.wait_all_terminal(tenant, timeout=60)
    log = _log(system, run_id)
    assert log[-1][0] == "RunSucceeded", [t for t, _ in log]
    assert _progress_by_attempt(log) == {1: [200, 400], 2: [600, 800, 1000]}
    checkpoints = [d["data"] for t, d in log if t == "CheckpointRecorded"]
    assert [c["chunks"] for c in checkpoints] == [0, 1, 2, 3, 4, 5], "one fit, before the first chunk only"
    assert {(c["model_by"], c["model_sha256"]) for c in checkpoints} == {(1, checkpoints[0]["model_sha256"])}
    result = log[-1][1]["result"]
    assert checkpoints[-1]["writers"] == [[0, 1], [2, 2]] and result["model_fitted_by_attempt"] == 1

    path = Path(storage.object_url(tenant, result["result_file_path"]).removeprefix("file://"))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["i"] for r in records] == list(range(1, 1001))
    notes = [r["note"] for r in records]
    expected = dataset_model.FittedTextModel(dataset_model.fit(notes[:300], 8, 5), 8).vectors(notes)
    # The model the first attempt fitted on the first 300 lines, whichever attempt embedded the line.
    got = np.array([r["embedding"] for r in records])
    assert np.abs(got - np.array(expected)).max() < 2e-6
    check_invariant(system, tenant, [run_id])


def test_a_worker_killed_at_any_moment_loses_and_repeats_no_line(
    make_system: MakeSystem, tenant: str
) -> None:
    """The kill lands wherever the run is (between a part and its checkpoint, say): the next attempt
    redoes at most the chunk in flight, and the result still has each line once."""
    system = _started(make_system)
    lines, chunk = 30_000, 300
    run_id, storage = _submit(system, tenant, lines, chunk_lines=chunk)

    def progress() -> int:
        with system.engine.connect() as conn:
            done = conn.execute(sa.select(runs.c.progress_done).where(runs.c.id == run_id)).scalar()
        return int(done or 0)

    wait_until(lambda: progress() >= 3000, timeout=60, interval=0.02, message="a tenth of the run done")
    pid = system.worker_of(run_id)
    assert pid is not None
    psutil.Process(pid).send_signal(signal.SIGKILL)
    system.wait_all_terminal(tenant, timeout=90)
    log = _log(system, run_id)
    print(f"\nprogress per attempt (first, last, reports): {_spans(log)}")
    assert log[-1][0] == "RunSucceeded", [t for t, _ in log]
    by_attempt = _progress_by_attempt(log)
    assert sorted(by_attempt) == [1, 2] and by_attempt[1][-1] < lines, "killed mid-run"
    resumed_at = next(
        d["data"]["lines_read"] for t, d in reversed(log[: _first_start(log, 2)]) if t == "CheckpointRecorded"
    )
    assert by_attempt[2][0] == resumed_at + chunk, "attempt 2 starts with the chunk after the last checkpoint"
    assert _result_lines(storage, tenant, log[-1][1]["result"]) == list(range(1, lines + 1))
    check_invariant(system, tenant, [run_id])


def _spans(log: list[tuple[str, dict[str, Any]]]) -> str:
    return str({a: (d[0], d[-1], len(d)) for a, d in _progress_by_attempt(log).items()})


def _first_start(log: list[tuple[str, dict[str, Any]]], attempt: int) -> int:
    return next(i for i, (t, d) in enumerate(log) if t == "RunStarted" and d["attempt"] == attempt)
