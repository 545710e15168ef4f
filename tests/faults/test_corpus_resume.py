"""Replace-filter-attrs over 50,000 records with the worker's pool process SIGKILLed mid-job: the retry
resumes after the last batch checkpoint and every record is rewritten exactly once (its version proves it)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import sqlalchemy as sa

from orchestrator.services import SubmitRequest
from orchestrator.store.schema import events, records
from orchestrator.text_records import TextRecords
from schemas.records import RecordIn
from tests.faults.harness import FaultSystem
from tests.services import wait_until

MakeSystem = Callable[..., FaultSystem]
RECORDS = 50_000
BATCH = 500


def _checkpoints(system: FaultSystem, run_id: object) -> list[dict[str, int]]:
    query = (
        sa.select(events.c.data)
        .where(events.c.stream_id == run_id, events.c.type == "CheckpointRecorded")
        .order_by(events.c.version)
    )
    with system.engine.connect() as conn:
        return [row["data"] for row in conn.execute(query).scalars()]


def test_a_killed_rewrite_resumes_and_rewrites_each_record_once(make_system: MakeSystem, tenant: str) -> None:
    system = make_system(lease_seconds=3.0, lease_renew_seconds=0.5)
    for role in ("relay", "project", "reconcile"):
        system.start(role)
    system.start("worker")
    datasets = TextRecords(system.engine)
    corpus = datasets.create_corpus(tenant, "big", "Big", ["lang"])
    for start in range(0, RECORDS, 10_000):
        batch = [
            RecordIn(
                external_id=f"r{i}",
                text=f"text {i}",
                field_id="f",
                source_type="s",
                corpus_key="big",
                metadata={"lang": "en" if i % 2 else "fr", "old": i},
            )
            for i in range(start, start + 10_000)
        ]
        datasets.upsert_records(tenant, batch)
    params = {"filter_attributes": ["lang", "year"], "defaults": {"year": 2024}, "drop_undeclared": True}
    run_id = system.service.submit(
        SubmitRequest(
            tenant_id=tenant,
            kind="corpus_replace_filter_attrs",
            params={**params, "batch_size": BATCH},
            attributes={"corpus_key": "big", "corpus_ids": [corpus.id], "user_handle": "test"},
        )
    ).run_id
    wait_until(lambda: len(_checkpoints(system, run_id)) >= 10, timeout=60, message="ten batches done")
    pid = system.worker_of(run_id)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    killed_at = len(_checkpoints(system, run_id))
    system.wait_all_terminal(tenant, timeout=120)
    assert system.event_types(run_id)[-1] == "RunSucceeded", system.logs()
    assert system.event_types(run_id).count("RunStarted") >= 2, "the kill did not land mid-job"
    assert killed_at < RECORDS // BATCH, "the job finished before the kill"

    done = [c["after_id"] for c in _checkpoints(system, run_id)]
    assert done == sorted(set(done)), "a batch was checkpointed twice"
    assert _checkpoints(system, run_id)[-1]["rewritten"] == RECORDS
    with system.engine.connect() as conn:
        versions = dict(
            conn.execute(
                sa.select(records.c.version, sa.func.count())
                .where(records.c.tenant_id == tenant)
                .group_by(records.c.version)
            ).all()
        )
        sample = (
            conn.execute(sa.select(records.c.metadata).where(records.c.tenant_id == tenant).limit(3))
            .scalars()
            .all()
        )
    assert versions == {2: RECORDS}, f"records by version: {versions}"
    assert all(set(m) == {"lang", "year"} and m["year"] == 2024 for m in sample)
    assert datasets.corpus(tenant, "big").filter_attributes == ["lang", "year"]  # type: ignore[union-attr]
