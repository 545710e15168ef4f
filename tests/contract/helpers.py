"""What the contract suites share: runs driven into any state through the write path.

What the surfaces must look like comes from their descriptions in `surfaces/`, not from here.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from orchestrator.domain.commands import (
    Cancel,
    Command,
    CreateRun,
    Fail,
    FailAttempt,
    ReportProgress,
    StartAttempt,
    Succeed,
)
from orchestrator.domain.decide import decide
from orchestrator.domain.state import RunState
from orchestrator.projections import runner
from orchestrator.services import Outcome, RunService, SubmitRequest
from orchestrator.settings import Settings
from orchestrator.store import outbox
from orchestrator.store.events import append, head_position
from orchestrator.store.schema import outbox as outbox_table
from schemas.jobs import JOB_KINDS
from schemas.runs import ErrorCode
from tests.services import placeholder_params

# Every state `Runs.make` can reach; "retrying" is running with a retry scheduled.
STATES = ("pending", "running", "retrying", "succeeded", "failed", "canceled")


class Runs:
    """Runs of any kind in any state, through the write path: RunService and the domain's commands.

    Its service submits to queues no worker consumes and grants hour-long leases, so only the test moves
    a run: the session's worker would fail kinds it has no handler for, and the reconciler would turn a
    lease of the suite's default four seconds into a lost attempt while a test still reads the run.
    """

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings.model_copy(
            update={"queue_prefix": f"idle{uuid.uuid4().hex[:8]}", "lease_seconds": 3600.0}
        )
        self.service = RunService(engine, self.settings)
        self.position = 0

    def _seen(self, outcome: Outcome) -> Outcome:
        self.position = max(self.position, outcome.position)
        return outcome

    def submit(self, tenant: str, kind: str, attributes: dict[str, Any] | None = None) -> UUID:
        request = SubmitRequest(
            tenant_id=tenant,
            kind=kind,
            params=placeholder_params(kind),
            attributes=attributes or {},
            actor="test",
        )
        return self._seen(self.service.submit(request)).run_id

    def submit_many(self, tenant: str, kind: str, attributes: list[dict[str, Any]]) -> list[UUID]:
        """Submit through the batch path, 500 runs a transaction: a thousand one by one took seconds."""
        made: list[UUID] = []
        for start in range(0, len(attributes), 500):
            requests = [
                SubmitRequest(
                    tenant_id=tenant, kind=kind, params=placeholder_params(kind), attributes=a, actor="test"
                )
                for a in attributes[start : start + 500]
            ]
            made += [self._seen(outcome).run_id for outcome in self.service.submit_batch(requests)]
        return made

    def cancel_all(self, run_ids: list[UUID]) -> None:
        """Cancel runs a test leaves pending. The session's reconciler re-publishes, 200 a pass, every
        dispatch nobody started; a thousand idle runs would crowd out the dispatches other suites wait on.
        """
        with ThreadPoolExecutor(max_workers=8) as pool:
            for outcome in pool.map(lambda r: self.service.execute(r, Cancel(reason="test")), run_ids):
                self._seen(outcome)

    def make(
        self,
        tenant: str,
        kind: str,
        state: str,
        *,
        attributes: dict[str, Any] | None = None,
        counts: dict[str, int] | None = None,
        result: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        error_code: ErrorCode = ErrorCode.INTERNAL_ERROR,
    ) -> UUID:
        """A run in `state` (one of STATES), with progress counts and a result when given."""
        assert state in STATES, state
        run_id = self.submit(tenant, kind, attributes)
        if state == "canceled":
            self._seen(self.service.execute(run_id, Cancel(reason="test")))
            return run_id
        if state == "pending":
            return run_id
        self._seen(self.service.execute(run_id, StartAttempt(1, "contract-test")))
        if counts:
            self._seen(self.service.execute(run_id, ReportProgress(1, 1, counts=counts)))
        retry_at = self.service.next_retry_at(1)
        finish: Command | None = {
            "running": None,
            "retrying": FailAttempt(1, ErrorCode.SERVICE_UNAVAILABLE, "upstream", retry_at),
            "succeeded": Succeed(1, result=result or {}, metrics=metrics or {}),
            "failed": Fail(1, error_code, f"failed with {error_code.value}"),
        }[state]
        if finish is not None:
            self._seen(self.service.execute(run_id, finish))
        return run_id

    def never_dispatched(self, tenant: str, kind: str, attributes: dict[str, Any] | None = None) -> UUID:
        """A pending run whose dispatch the relay has not published yet.

        RunService.submit makes the dispatch due at once and the session's relay publishes it within
        milliseconds, so this writes what submit writes (RunCreated and its outbox row, one transaction)
        with the row due tomorrow: the state a run is in while the relay is behind or down.
        """
        run_id = uuid.uuid4()
        created = decide(
            RunState(), CreateRun(run_id=run_id, tenant_id=tenant, kind=kind, attributes=attributes or {})
        )
        queue = self.settings.queue_name(JOB_KINDS[kind].queue)
        with self.engine.begin() as conn:
            recorded = append(conn, run_id, tenant, created, 0, {"actor": "test"})
            outbox.enqueue(conn, run_id, tenant, 1, queue, datetime.now(UTC) + timedelta(days=1))
        self.position = max(self.position, recorded[-1].position)
        return run_id

    def wait_dispatched(self, run_ids: list[UUID], timeout: float = 10.0) -> None:
        """Until the relay has published every run's dispatch (marked its outbox row sent)."""
        deadline = time.monotonic() + timeout
        query = sa.select(sa.func.count(sa.distinct(outbox_table.c.run_id))).where(
            outbox_table.c.run_id.in_(run_ids), outbox_table.c.sent_at.is_not(None)
        )
        while True:
            with self.engine.connect() as conn:
                if conn.execute(query).scalar_one() == len(set(run_ids)):
                    return
            assert time.monotonic() < deadline, "relay did not publish in time"
            time.sleep(0.05)

    def settle(self, timeout: float = 20.0) -> None:
        """Until the projection shows every write made so far (the `system` fixture's projector), the
        API's too: lists read the projection, which trails the log, and only a get folds the stream."""
        with self.engine.connect() as conn:
            position = max(self.position, head_position(conn))
        assert runner.wait_for(self.engine, position, timeout), "projection did not catch up"
