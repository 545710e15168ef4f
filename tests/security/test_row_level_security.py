"""Row-level security on its own (S2): queries with no tenant filter at all, run as the application
role, return exactly the rows of the tenants in scope, in every tenant table, and none without a tenant.
Every table with a tenant column is FORCE'd and has a policy.

The application's own filters are tested alone in test_tenant_isolation.py (its `app filter only` runs).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import UUID

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from orchestrator.domain.commands import Command, StartStep, Succeed
from orchestrator.services import RunService, SubmitRequest
from orchestrator.settings import Settings
from orchestrator.store import features, limits, schedules, slots, tenancy, workflows
from orchestrator.store.tenancy import APP_ROLE
from orchestrator.text_records import TextRecords
from schemas.records import RecordIn
from schemas.taxonomy import Assignment, TreeNode
from tests.conftest import System
from tests.security.conftest import as_app_role, idle_settings, settle, tenant_tables


def test_every_tenant_table_forces_a_policy(engine: Engine) -> None:
    with engine.connect() as conn:
        tables = tenant_tables(conn)
        expected = {"events", "runs", "run_steps", "outbox", "idempotency_keys", "run_leases", "features"}
        expected |= {"dispatch_slots", "tenant_limits"}
        assert expected <= set(tables)
        for table in tables:
            row = conn.execute(
                sa.text(
                    "SELECT c.relrowsecurity, c.relforcerowsecurity, "
                    "(SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) "
                    "FROM pg_class c WHERE c.relname = :t AND c.relnamespace = 'public'::regnamespace"
                ),
                {"t": table},
            ).one()
            assert row == (True, True, 2), f"{table}: RLS {row}"


def _command(service: RunService, run_id: UUID, command: Command) -> None:
    service.execute(run_id, command)


@pytest.fixture()
def two_tenants(engine: Engine, settings: Settings, system: System) -> Iterator[tuple[str, str]]:
    """Tenants A and B, each with a row in every tenant table, written the way the system writes them:
    a submit with an idempotency key (events, outbox, idempotency_keys), an attempt started (run_leases)
    that has begun a step and holds a dispatch slot (dispatch_slots), a feature registered (features), limits
    set (tenant_limits), a workflow document (workflows and workflow_versions), a paused schedule (schedules),
    and the session's projector (runs, run_steps)."""
    service = RunService(engine, idle_settings(settings))
    tenants = (f"rls-a-{uuid.uuid4().hex[:8]}", f"rls-b-{uuid.uuid4().hex[:8]}")
    started: list[UUID] = []
    try:
        for tenant in tenants:
            request = SubmitRequest(
                tenant_id=tenant, kind="sleep", idempotency_key=f"k-{tenant}", actor="test"
            )
            run_id = service.submit(request).run_id
            assert service.start_attempt(run_id, 1, "rls-test") is not None
            started.append(run_id)
            _command(service, run_id, StartStep(1, "only", 1))
            with engine.begin() as conn:
                features.insert(conn, tenant, "rls", "file:///nowhere.jsonl", "jsonl")
                limits.replace(conn, tenant, 5, {"sleep": 2})  # tenant_limits
                slots.hold(
                    conn, [(run_id, tenant, "sleep", "orch.short")]
                )  # dispatch_slots, as the relay takes one
                workflows.create(
                    conn, tenant, "rls", {"steps": [{"key": "a", "tool": "transform", "input": {}}]}
                )
                nightly = schedules.NewSchedule(
                    "rls", "0 3 * * *", "sleep", {"duration": 0}, None, {}, 0, "skip", enabled=False
                )
                schedules.create(conn, tenant, nightly, datetime.now(UTC), "test")  # schedules
            _write_datasets(TextRecords(engine), tenant, run_id)
        settle(engine)
        yield tenants
    finally:
        for run_id in started:  # ending the attempt gives its lease back
            _command(service, run_id, Succeed(1))


def _write_datasets(datasets: TextRecords, tenant: str, run_id: UUID) -> None:
    """A record, a corpus and a one-node taxonomy tree of the tenant (records, corpora, taxonomy_*)."""
    record = RecordIn(external_id="one", text="some text", field_id="f", source_type="s")
    datasets.upsert_records(tenant, [record])
    datasets.create_corpus(tenant, "c", "corpus", [])
    record_id = datasets.record_texts(tenant, "f", "s", "")[0].id
    node = TreeNode(1, None, 1, "label", ("some",), 1, (record_id,))
    datasets.replace_tree(tenant, run_id, [node], [Assignment(record_id, 1, (1,))])


def _rows_by_tenant(engine: Engine, table: str, scope: list[str] | None, *, app_role: bool) -> Counter[str]:
    """Count `table`'s rows per tenant with a query that names no tenant at all."""
    with engine.begin() as conn:
        if app_role:
            as_app_role(conn, scope)
        rows = conn.execute(sa.text(f"SELECT tenant_id, count(*) FROM {table} GROUP BY tenant_id"))
        return Counter({tenant: count for tenant, count in rows})


def test_the_policies_alone_show_the_app_role_only_the_tenants_in_scope(
    engine: Engine, two_tenants: tuple[str, str]
) -> None:
    a, b = two_tenants
    with engine.connect() as conn:
        tables = tenant_tables(conn)
    for table in tables:
        everyone = _rows_by_tenant(engine, table, None, app_role=False)  # the owner: system policy
        written = Counter({t: everyone[t] for t in (a, b)})
        assert written[a] and written[b], f"{table}: no row of each tenant; teach two_tenants to write one"
        for scope in ([a], [b], [a, b]):
            seen = _rows_by_tenant(engine, table, scope, app_role=True)
            assert seen == Counter({t: written[t] for t in scope}), (table, scope)
        for nobody in (None, [], [f"nobody-{uuid.uuid4().hex[:6]}"]):
            assert _rows_by_tenant(engine, table, nobody, app_role=True) == Counter(), (table, nobody)


def _copyable_columns(conn: sa.Connection, table: str) -> list[str]:
    """The columns an INSERT may name, the tenant aside (identity and generated ones are the server's)."""
    return list(
        conn.execute(
            sa.text(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
                "AND table_name = :t AND is_identity = 'NO' AND is_generated = 'NEVER' "
                "AND column_name <> 'tenant_id' ORDER BY ordinal_position"
            ),
            {"t": table},
        ).scalars()
    )


def test_the_app_role_cannot_write_outside_its_tenants(engine: Engine, two_tenants: tuple[str, str]) -> None:
    """USING hides B's rows from A's updates and deletes; WITH CHECK refuses a row of B, new or moved.
    Every statement runs in a transaction that is rolled back, so a broken policy destroys nothing."""
    a, b = two_tenants
    with engine.connect() as conn:
        tables = tenant_tables(conn)
        columns = {table: ", ".join(_copyable_columns(conn, table)) for table in tables}
    for table in tables:
        for statement in (
            f"UPDATE {table} SET tenant_id = tenant_id WHERE tenant_id = :b",
            f"DELETE FROM {table} WHERE tenant_id = :b",
        ):
            with engine.connect() as conn:
                as_app_role(conn, [a])
                assert conn.execute(sa.text(statement), {"b": b}).rowcount == 0, statement
        for statement in (
            f"UPDATE {table} SET tenant_id = :b WHERE tenant_id = :a",
            # An INSERT reads no policy's USING, so only WITH CHECK stands in its way.
            f"INSERT INTO {table} ({columns[table]}, tenant_id) "
            f"SELECT {columns[table]}, :b FROM {table} WHERE tenant_id = :a",
        ):
            with pytest.raises(sa.exc.ProgrammingError, match="row-level security"), engine.connect() as conn:
                as_app_role(conn, [a])
                conn.execute(sa.text(statement), {"a": a, "b": b})


def test_api_transactions_run_as_the_app_role(engine: Engine) -> None:
    tenancy.install(engine)
    token = tenancy.current_scope.set(tenancy.Scope('["some-tenant"]'))
    try:
        with engine.connect() as conn:
            role, tenants = conn.execute(
                sa.text("SELECT current_user, current_setting('orch.tenants')")
            ).one()
    finally:
        tenancy.current_scope.reset(token)
    assert (role, json.loads(tenants)) == (APP_ROLE, ["some-tenant"])
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT current_user")).scalar_one() != APP_ROLE
