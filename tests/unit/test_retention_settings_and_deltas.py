"""Retention's pure parts: the per-tenant periods read from the environment, and taking deleted runs out of
the runs projection's aggregates exactly undoes counting them in."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsError

from orchestrator.projections.counts import deltas
from orchestrator.projections.run_metrics import Deltas
from orchestrator.projections.runs import RunRecord
from orchestrator.settings import Settings
from schemas.runs import RunStatus

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_retention_periods_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_RETENTION_DAYS", "30")
    monkeypatch.setenv("ORCH_RETENTION_TENANT_DAYS", '{"audit": 0, "chatty": 1.5}')
    settings = Settings()
    assert [settings.retention_days_for(t) for t in ("audit", "chatty", "other")] == [0, 1.5, 30]
    assert Settings(retention_days=0).retention_days_for("any") == 0, "the default keeps forever"
    for bad in ('{"t": -1}', "not json"):
        monkeypatch.setenv("ORCH_RETENTION_TENANT_DAYS", bad)
        with pytest.raises((ValidationError, SettingsError)):
            Settings()


def _finished(kind: str, status: RunStatus, parent: uuid.UUID | None = None) -> RunRecord:
    return RunRecord(
        id=uuid.uuid4(),
        tenant_id="t",
        kind=kind,
        task=None,
        status=status,
        parent_id=parent,
        root_id=parent or uuid.uuid4(),
        depth=1 if parent else 0,
        max_attempts=3,
        created_at=T0,
        updated_at=T0,
        last_position=9,
        started_at=T0 + timedelta(seconds=0.3),
        finished_at=T0 + timedelta(seconds=4),
    )


def test_removing_runs_undoes_counting_them() -> None:
    root = _finished("sleep", RunStatus.SUCCEEDED)
    runs = [root, _finished("sleep", RunStatus.CANCELED, root.id), _finished("workflow", RunStatus.FAILED)]
    runs.append(replace(runs[2], id=uuid.uuid4(), started_at=None))  # never started: no latency at all
    added = deltas({}, {r.id: r for r in runs})
    removed: Counter[tuple[str, str, str, bool]] = Counter()
    for run in runs:
        removed[(run.tenant_id, run.kind, run.status.value, run.parent_id is None)] -= 1
    assert Counter({k: -n for k, n in added.items()}) == removed

    counted, uncounted = Deltas({}, {r.id: r for r in runs}), Deltas.of_removed(runs)
    assert {k: -n for k, n in counted.started.items()} == dict(uncounted.started)
    assert {k: -n for k, n in counted.counts.items()} == dict(uncounted.counts)
    assert {k: -v for k, v in counted.totals.items()} == uncounted.totals
    assert sum(counted.started.values()) == 3 and Deltas.of_removed([]).counts == Counter()
