"""A worker's writes fold from the state it committed last (orchestrator.folded_states), and still see
every event another process appended in between."""

from __future__ import annotations

import uuid

from sqlalchemy.engine import Engine

from orchestrator.domain.commands import Cancel, ReportProgress, StartAttempt
from orchestrator.domain.state import fold
from orchestrator.services import RunService, SubmitRequest
from orchestrator.settings import Settings
from orchestrator.store.events import read_stream


def _idle(engine: Engine, settings: Settings) -> RunService:
    """A service of its own (another process's cache) on a queue no worker consumes."""
    idle = settings.model_copy(
        update={"queue_prefix": f"idle{uuid.uuid4().hex[:8]}", "lease_seconds": 3600.0}
    )
    return RunService(engine, idle)


def test_a_warm_write_reads_only_the_tail_and_sees_what_others_wrote(
    engine: Engine, settings: Settings
) -> None:
    worker, api = _idle(engine, settings), _idle(engine, settings)
    run_id = worker.submit(SubmitRequest(tenant_id=f"fold-{uuid.uuid4().hex[:8]}", kind="sleep")).run_id
    worker.execute(run_id, StartAttempt(attempt=1, worker="w"), actor="w")
    for done in range(1, 41):
        outcome = worker.execute(run_id, ReportProgress(1, done, 80), actor="w", whole_stream=False)
        # The last event it folded, read again, and the one it appended: not the whole stream.
        assert len(outcome.stream) == 2
    api.execute(run_id, Cancel(reason="enough"), actor="api")  # another process appends
    outcome = worker.execute(run_id, ReportProgress(1, 41, 80), actor="w", whole_stream=False)
    assert outcome.state.cancel_requested  # the tail brought the other process's event
    with engine.connect() as conn:
        assert outcome.state == fold(r.to_event() for r in read_stream(conn, run_id))


def test_the_whole_stream_is_read_where_the_caller_asks_for_it(engine: Engine, settings: Settings) -> None:
    service = _idle(engine, settings)
    run_id = service.submit(SubmitRequest(tenant_id=f"fold-{uuid.uuid4().hex[:8]}", kind="sleep")).run_id
    service.execute(run_id, StartAttempt(attempt=1, worker="w"), actor="w")
    for done in range(1, 6):
        service.execute(run_id, ReportProgress(1, done, 5), actor="w", whole_stream=False)
    outcome = service.execute(run_id, ReportProgress(1, 5, 5, message="again"), actor="w")
    assert [r.version for r in outcome.stream] == list(range(1, outcome.state.version + 1))
