"""`GET /metrics` over the real database with the system's worker: the run counters move with the runs a
test submits and agree with the counts of the events table, two API apps that share nothing but the
database report the same figures, tenants past the top N share one label, and a token closes it."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from orchestrator.api.app import create_app
from orchestrator.projections import runner
from orchestrator.projections.run_metrics import bucket
from orchestrator.settings import Settings
from orchestrator.store.engine import make_engine
from orchestrator.store.events import head_position
from orchestrator.store.schema import events
from tests.conftest import System
from tests.services import wait_until

pytestmark = pytest.mark.usefixtures("system")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
# Families read from the database: the same on every replica. The rest are per process.
SHARED = ("orch_runs", "orch_run_", "orch_attempts_lost", "orch_log_head", "orch_outbox_", "orch_projector_")
# Ages grow with the clock between two scrapes while a due row waits, and the session keeps some waiting:
# runs submitted to queues no worker consumes, held back past their queue's cap.
AGES = ("orch_outbox_oldest_due_seconds",)


@contextmanager
def api(settings: Settings, engine: Engine, **changes: Any) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update=changes), engine)) as client:
        yield client


@pytest.fixture(scope="module")
def metered(settings: Settings, engine: Engine, system: System) -> Iterator[TestClient]:
    with api(settings, engine, metrics_top_tenants=1000) as client:
        yield client


@pytest.fixture(scope="module")
def idle(settings: Settings, engine: Engine, system: System) -> Iterator[TestClient]:
    """Submits to a queue no worker consumes, so its runs stay pending until canceled."""
    with api(settings, engine, queue_prefix=f"idle{uuid.uuid4().hex[:8]}", metrics_top_tenants=1000) as c:
        yield c


def scrape(client: TestClient, headers: dict[str, str] | None = None) -> Samples:
    response = client.get("/metrics", headers=headers or {})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


def shared(samples: Samples) -> Samples:
    return {key: v for key, v in samples.items() if key[0].startswith(SHARED) and key[0] not in AGES}


def settle(engine: Engine) -> None:
    with engine.connect() as conn:
        head = head_position(conn)
    assert all(runner.wait_for(engine, head, 20.0, p.name) for p in runner.PROJECTIONS), "projector is behind"


def log_counts(engine: Engine, tenant: str | None = None) -> dict[str, int]:
    """From the events table itself: runs created, started (at least once) and ended, by event type."""
    where = [events.c.tenant_id == tenant] if tenant else []
    query = (
        sa.select(events.c.type, sa.func.count(sa.distinct(events.c.stream_id)))
        .where(*where)
        .group_by(events.c.type)
    )
    with engine.connect() as conn:
        return {kind: int(n) for kind, n in conn.execute(query)}


def submit(client: TestClient, auth: dict[str, str], **params: Any) -> str:
    response = client.post("/v1/runs", json={"kind": "sleep", "params": params}, headers=auth)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_the_counters_move_with_the_runs_and_agree_with_the_event_log(
    metered: TestClient, idle: TestClient, auth: dict[str, str], tenant: str, engine: Engine
) -> None:
    settle(engine)
    before = scrape(metered)
    appends_before = total(before, "orch_event_append_seconds_count")
    for _ in range(3):
        submit(metered, auth, duration=0)
    submit(metered, auth, duration=0, fail=True)
    canceled = submit(idle, auth)
    assert idle.post(f"/v1/runs/{canceled}/cancel", headers=auth).status_code == 200

    def all_ended() -> bool:
        counts = log_counts(engine, tenant)
        return sum(counts.get(t, 0) for t in ("RunSucceeded", "RunFailed", "RunCanceled")) == 5

    wait_until(all_ended, timeout=60, message="the five runs ended")
    settle(engine)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        after = scrape(metered)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert len(statements) <= 6, statements  # the transaction's settings and four reads

    mine = {"tenant": tenant, "kind": "sleep"}
    assert value(after, "orch_runs_submitted_total", **mine) == 5
    assert value(after, "orch_runs_started_total", **mine) == 4
    for status, n in (("succeeded", 3), ("failed", 1), ("canceled", 1)):
        assert value(after, "orch_runs_finished_total", **mine, status=status) == n, status
        assert value(after, "orch_runs", **mine, status=status) == n, status

    # The whole scrape against the whole log. Other tests' runs of this session may still be moving, so
    # scrape and count again until both were taken with nothing in between (the projector caught up).
    def whole_log_agrees() -> bool:
        settle(engine)
        scraped, log = scrape(metered), log_counts(engine)
        with engine.connect() as conn:
            head = head_position(conn)
        lags = [value(scraped, "orch_projector_lag_events", projection=p.name) for p in runner.PROJECTIONS]
        return (
            value(scraped, "orch_log_head_position") == head
            and lags == [0] * len(lags)
            and total(scraped, "orch_runs_submitted_total") == log["RunCreated"]
            and total(scraped, "orch_runs_started_total") == log["RunStarted"]
            and total(scraped, "orch_runs_finished_total", status="succeeded") == log["RunSucceeded"]
            and total(scraped, "orch_runs_finished_total", status="failed") == log.get("RunFailed", 0)
            and total(scraped, "orch_runs_finished_total", status="canceled") == log.get("RunCanceled", 0)
            and total(scraped, "orch_attempts_lost_total") == log.get("AttemptLost", 0)
        )

    wait_until(whole_log_agrees, timeout=60, message="the scrape agrees with the whole log")
    for name in ("orch_runs_submitted_total", "orch_runs_finished_total"):
        assert total(after, name) - total(before, name) >= 5, name
    for name in ("orch_run_duration_seconds_count", "orch_run_queue_wait_seconds_count"):
        assert value(after, name, kind="sleep") - value(before, name, kind="sleep") >= 4, name
        inf = value(after, name.replace("_count", "_bucket"), kind="sleep", le="+Inf")
        assert inf == value(after, name, kind="sleep")
    assert total(after, "orch_event_append_seconds_count") > appends_before, "appends in this process"
    assert value(after, "orch_sse_streams_active") == 0


def test_two_apis_sharing_only_the_database_report_the_same_figures(
    settings: Settings, metered: TestClient, auth: dict[str, str], tenant: str, engine: Engine
) -> None:
    other_engine = make_engine(settings.database_url or "")
    try:
        with api(settings, other_engine, metrics_top_tenants=1000) as other:
            run = submit(metered, auth, duration=0)  # through the first one only
            wait_until(lambda: log_counts(engine, tenant).get("RunSucceeded") == 1, timeout=30)
            # Other tests' runs may move between the two scrapes: both replicas must agree on one moment.
            figures: list[Any] = []

            def replicas_agree() -> bool:
                settle(engine)
                figures[:] = [shared(scrape(metered)), shared(scrape(other))]
                return bool(figures[0] == figures[1])

            wait_until(replicas_agree, timeout=60, message="both replicas report the same figures")
            second = figures[1]
            assert (
                value(second, "orch_runs_finished_total", tenant=tenant, kind="sleep", status="succeeded")
                == 1
            )
            assert metered.get(f"/v1/runs/{run}", headers=auth).json()["status"] == "succeeded"
    finally:
        other_engine.dispose()


def test_tenants_past_the_top_n_share_one_label(
    settings: Settings, engine: Engine, make_key: Callable[[str], str], metered: TestClient, idle: TestClient
) -> None:
    busy = f"busy-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {make_key(busy)}"}
    # More runs than any other tenant of the session has, whatever ran before: then it is the top one.
    with engine.connect() as conn:
        most = conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(sa.text("n")), 0)).select_from(
                sa.select(sa.func.count().label("n"))
                .select_from(events)
                .where(events.c.type == "RunCreated")
                .group_by(events.c.tenant_id)
                .subquery()
            )
        ).scalar_one()
    wanted = int(most) + 1
    for start in range(0, wanted, 1000):
        batch = [{"kind": "sleep"}] * min(1000, wanted - start)
        created = idle.post("/v1/runs:batch", json={"runs": batch}, headers=headers)
        assert created.status_code == 201, created.text
    settle(engine)
    with api(settings, engine, metrics_top_tenants=1) as narrow:
        bounded = scrape(narrow)
    tenants = {dict(labels)["tenant"] for name, labels in bounded if name == "orch_runs_submitted_total"}
    assert tenants == {busy, "other"}
    assert value(bounded, "orch_runs_submitted_total", tenant=busy, kind="sleep") == wanted
    with api(settings, engine, metrics_top_tenants=1) as narrow:

        def same_totals() -> bool:  # other tests' runs may move between the two scrapes
            settle(engine)
            narrowed, everyone = scrape(narrow), scrape(metered)
            names = ("orch_runs_submitted_total", "orch_runs_finished_total")
            return all(total(narrowed, name) == total(everyone, name) for name in names)

        wait_until(same_totals, timeout=60, message="the bounded scrape sums to the full one")


def test_a_metrics_token_is_required_once_set(settings: Settings, engine: Engine) -> None:
    token = "metrics-" + uuid.uuid4().hex
    with api(settings, engine, metrics_token=token) as closed:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {token}"}):
            refused = closed.get("/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.json() == {"detail": "missing or invalid API key", "error_code": "unauthenticated"}
        assert "orch_runs_submitted_total" in str(scrape(closed, {"Authorization": f"Bearer {token}"}))
    with api(settings, engine) as open_api:
        assert "/metrics" not in open_api.get("/openapi.json").json()["paths"]


def test_the_kept_figures_equal_the_read_model_through_a_rebuild(engine: Engine) -> None:
    """`run_started` and `run_latency` are aggregates of `runs`; a rebuild empties and refolds them, and
    they still are (the sums up to float rounding: the same additions in another order)."""

    def kept() -> tuple[set[tuple[Any, ...]], dict[tuple[Any, ...], tuple[int, float]]]:
        with engine.connect() as conn:
            started = {
                tuple(r) for r in conn.execute(sa.text("SELECT tenant_id, kind, count FROM run_started"))
            }
            latency = conn.execute(sa.text("SELECT kind, metric, le, count, total FROM run_latency"))
            return started, {(k, m, le): (int(n), float(t)) for k, m, le, n, t in latency}

    def aggregated() -> tuple[set[tuple[Any, ...]], dict[tuple[Any, ...], int]]:
        with engine.connect() as conn:
            started = conn.execute(
                sa.text(
                    "SELECT tenant_id, kind, count(*) FROM runs WHERE started_at IS NOT NULL GROUP BY 1, 2"
                )
            )
            rows = conn.execute(sa.text("SELECT kind, created_at, started_at, finished_at FROM runs"))
            filed: Counter[tuple[Any, ...]] = Counter()
            for kind, created, began, ended in rows:
                if began is not None:
                    filed[(kind, "queue_wait", bucket("queue_wait", (began - created).total_seconds()))] += 1
                if began is not None and ended is not None:
                    filed[(kind, "duration", bucket("duration", (ended - began).total_seconds()))] += 1
            return {tuple(r) for r in started}, dict(filed)

    def head() -> int:
        with engine.connect() as conn:
            return head_position(conn)

    # Other tests' runs may still be ending: compare only readings taken with no event appended between
    # them (a run that ends between two readings is in one and not the other).
    runs_projection = next(p for p in runner.PROJECTIONS if p.name == "runs")
    for _ in range(20):
        settle(engine)
        start = head()
        before = kept()
        expected_started, expected_filed = aggregated()
        runner.rebuild(engine, runs_projection)
        after = kept()
        if head() == start:
            break
    else:
        pytest.fail("the log never stood still long enough to compare a rebuild with the figures before it")
    assert before[0] == expected_started
    assert {key: n for key, (n, _) in before[1].items()} == expected_filed
    assert after[0] == before[0]
    assert after[1].keys() == before[1].keys()
    for key, (n, seconds) in after[1].items():
        assert n == before[1][key][0] and seconds == pytest.approx(before[1][key][1], abs=1e-6), key
