"""The reconciler's guarantees come from the write side: with no projector at all (the read models stay
empty), an overdue cancel is still forced and a lost attempt still recovered; and it tells a lost
dispatch from one waiting behind a backlog by asking the broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from orchestrator.domain.commands import StartAttempt
from orchestrator.processes.broker import make_celery, queue_depth
from orchestrator.processes.reconciler import (
    force_overdue_cancels,
    recover_expired_leases,
    redispatch_stalled,
)
from orchestrator.services import RunService, SubmitRequest
from orchestrator.settings import Settings
from orchestrator.store.engine import make_engine
from orchestrator.store.events import read_stream
from orchestrator.store.migrate import upgrade
from orchestrator.store.schema import outbox, runs
from tests import services


@pytest.fixture(scope="module")
def unprojected(settings: Settings) -> Iterator[RunService]:
    with services.postgres_admin_url() as admin, services.fresh_database(admin) as url:
        upgrade(url)
        engine = make_engine(url, pool_size=2)
        own = settings.model_copy(
            update={
                "database_url": url,
                "queue_prefix": f"rec{uuid.uuid4().hex[:8]}",
                "cancel_grace_seconds": 0.2,
                "lease_seconds": 0.5,
            }
        )
        yield RunService(engine, own)
        engine.dispose()


def _types(service: RunService, run_id: uuid.UUID) -> list[str]:
    with service.engine.connect() as conn:
        return [e.type for e in read_stream(conn, run_id)]


def _running(service: RunService) -> uuid.UUID:
    run_id = service.submit(SubmitRequest(tenant_id="rec", kind="sleep")).run_id
    service.execute(run_id, StartAttempt(1, "a-worker-that-ignores-cancels"))
    return run_id


def test_an_overdue_cancel_is_forced_with_no_read_model(unprojected: RunService) -> None:
    service = unprojected
    run_id = _running(service)
    service.cancel("rec", run_id)
    service.renew_lease(run_id, 1)  # the worker is alive, it just does not stop
    time.sleep(0.3)  # past the grace period: what is waited for here is the clock itself
    assert force_overdue_cancels(service) == 1
    assert _types(service, run_id)[-2:] == ["CancelRequested", "RunCanceled"]
    with service.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar_one() == 0


def test_a_cancel_within_its_grace_is_left_alone(unprojected: RunService) -> None:
    service = RunService(
        unprojected.engine, unprojected.settings.model_copy(update={"cancel_grace_seconds": 60.0})
    )
    run_id = _running(service)
    service.cancel("rec", run_id)
    assert force_overdue_cancels(service) == 0
    assert _types(service, run_id)[-1] == "CancelRequested"


def test_an_expired_lease_is_recovered_with_no_read_model(unprojected: RunService) -> None:
    service = unprojected
    run_id = _running(service)
    time.sleep(0.6)  # the lease (0.5 s) runs out: the clock is the condition
    assert recover_expired_leases(service) >= 1
    assert "AttemptLost" in _types(service, run_id)


def _stalled(service: RunService, count: int) -> list[uuid.UUID]:
    """Runs whose dispatch was published an hour ago and never started."""
    run_ids = [service.submit(SubmitRequest(tenant_id="rec", kind="sleep")).run_id for _ in range(count)]
    with service.engine.begin() as conn:
        conn.execute(
            outbox.update()
            .where(outbox.c.run_id.in_(run_ids))
            .values(sent_at=sa.func.now() - sa.text("interval '1 hour'"))
        )
    return run_ids


def _dispatches(service: RunService, run_ids: list[uuid.UUID]) -> int:
    query = sa.select(sa.func.count()).where(outbox.c.run_id.in_(run_ids))
    with service.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


@pytest.mark.parametrize(
    ("waiting", "republished"),
    [(5, False), (3, False), (2, True), (0, True), (None, True)],
)
def test_a_busy_queue_is_not_a_lost_dispatch(
    unprojected: RunService, waiting: int | None, republished: bool
) -> None:
    """Stalled dispatches are published again only when the broker holds fewer waiting messages than
    there are stalled dispatches (or cannot say): otherwise they may all be waiting their turn."""
    service = unprojected
    with service.engine.begin() as conn:  # earlier cases' stalled rows would count here too
        conn.execute(outbox.delete())
    run_ids = _stalled(service, 3)
    redispatch_stalled(service, lambda queue: waiting)
    assert _dispatches(service, run_ids) == (6 if republished else 3)


def test_the_broker_counts_what_a_queue_holds(settings: Settings) -> None:
    app = make_celery(settings, settings.redis_url or "")
    depth = queue_depth(app)
    queue = f"depth-{uuid.uuid4().hex[:8]}"
    assert depth(queue) == 0
    for _ in range(3):
        app.send_task("orch.nothing", queue=queue)
    assert depth(queue) == 3
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(queue)
    unreachable = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    assert queue_depth(make_celery(unreachable, unreachable.redis_url or ""))(queue) is None
