"""Contract: the app's own OpenAPI document, fuzzed by schemathesis against the app in process.

Every operation the document lists gets generated requests (valid and invalid: the coverage and fuzzing
phases), each sent with a real API key of a seeded tenant, and every answer must be no 5xx, a status the
operation documents, a declared content type and a body that matches the declared schema.

Random values rarely name anything that exists, so the generators are nudged towards the seeded tenant:
path `run_id`s are sometimes one of its runs, and the fields that pick a tenant, a task or a job kind are
sometimes ones that exist. Event streams are fuzzed like the rest (404, 422 and 200 alike) but only ever
get finished runs, whose stream ends after the terminal event; a read timeout bounds every request anyway.

The default run keeps a small share (`EXAMPLES` per operation); `ORCH_FUZZ_EXAMPLES=300` (`make fuzz`) is
the long run. Runs the fuzzer creates go to a queue no worker consumes, and are canceled at the end.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pytest
import schemathesis
import sqlalchemy as sa
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.engine import Engine

from orchestrator.api.app import create_app
from orchestrator.domain.commands import (
    Cancel,
    FinishStep,
    RecordUsage,
    StartAttempt,
    StartStep,
    Succeed,
)
from orchestrator.domain.errors import DomainError
from orchestrator.services import SubmitRequest
from orchestrator.settings import Settings
from orchestrator.store.schema import events
from schemas.events import TERMINAL_EVENT_TYPES
from schemas.tasks import PUBLISHED_TASKS
from tests.contract.helpers import STATES, Runs

pytestmark = pytest.mark.usefixtures("system")

EXAMPLES = int(os.environ.get("ORCH_FUZZ_EXAMPLES", "30"))
# Read timeout of one request: a stream that is still open after it is cut there (and kept so far).
TIMEOUT_SECONDS = 10.0
STREAMS = ("/v1/runs/{run_id}/stream", "/api/v1/data-products/runs/{run_id}/events")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
CASES: defaultdict[str, Counter[int]] = defaultdict(Counter)  # operation -> status -> answers


@dataclass
class Seeded:
    tenant: str
    key: str
    runs: list[str] = field(default_factory=list)  # every seeded run
    finished: list[str] = field(default_factory=list)  # the ones whose stream ends at once


def _seed(runs: Runs, tenant: str) -> tuple[list[UUID], list[UUID]]:
    """Runs of every kind the surfaces serve, in every state, one with steps and usage, one with a child."""
    live: list[UUID] = []
    finished: list[UUID] = []
    attributes: dict[str, dict[str, Any]] = {
        "sleep": {},
        "taxonomy_build": {"field_id": "f1", "source_type": "crm", "source_id": "", "field_label": "Field"},
        "dataset_task": {"run_name": "r", "task_id": "t", "task_name": "n", "feature_id": "f"},
        "corpus_rebuild_vector_index": {"corpus_ids": [1, 2], "user_handle": "fuzz"},
    }
    for kind, attrs in attributes.items():
        for state in STATES:
            run_id = runs.make(
                tenant,
                kind,
                state,
                attributes=attrs,
                counts={"record_count": 3},
                result={"line_count": 7, "outcome": {"summary": "ok", "rowCount": 1}},
                metrics={"seconds": 1.5},
            )
            (finished if state in ("succeeded", "failed", "canceled") else live).append(run_id)
    # A data-products run of the published task, with steps and usage, and a pending child.
    task = PUBLISHED_TASKS["sleep"]
    parent = runs.submit(tenant, "sleep", {"task_id": str(task.id), "context": {"duration": 1}})
    outcomes = [
        runs.service.submit(SubmitRequest(tenant_id=tenant, kind="sleep", parent_id=parent, actor="test"))
    ]
    for command in (
        StartAttempt(1, "contract-test"),
        StartStep(1, "query", 1, "sql", {"q": "select 1"}),
        FinishStep(1, "query", 1, "succeeded", {"rows": 12}, None, 40),
        RecordUsage(1, 100, 20, 5, 1, "0.0012"),
        Succeed(1, {"outcome": {"summary": "done"}}),
    ):
        outcomes.append(runs.service.execute(parent, command))
    runs.position = max(runs.position, *(outcome.position for outcome in outcomes))
    finished.append(parent)
    live.append(outcomes[0].run_id)
    return live, finished


def _unfinished(engine: Engine, tenant: str) -> list[UUID]:
    ended = sa.select(events.c.stream_id).where(
        events.c.tenant_id == tenant, events.c.type.in_(sorted(TERMINAL_EVENT_TYPES))
    )
    query = (
        sa.select(events.c.stream_id)
        .distinct()
        .where(events.c.tenant_id == tenant, events.c.stream_id.not_in(ended))
    )
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(query)]


@pytest.fixture(scope="module")
def seeded(settings: Settings, engine: Engine, make_key: Callable[[str], str]) -> Iterator[Seeded]:
    tenant = f"fuzz-{uuid.uuid4().hex[:10]}"
    runs = Runs(engine, settings)
    live, finished = _seed(runs, tenant)
    runs.settle()
    seed = Seeded(tenant, make_key(tenant), [str(r) for r in live + finished], [str(r) for r in finished])
    SEED[:] = [seed]
    yield seed
    SEED.clear()
    # Whatever is still pending or running (seeded, or created by the fuzzer), so the reconciler does not
    # keep re-publishing dispatches nobody will ever start.
    for run_id in _unfinished(engine, tenant):
        with contextlib.suppress(DomainError):
            runs.service.execute(run_id, Cancel(reason="fuzz"))
    if CASES:
        total = sum(sum(statuses.values()) for statuses in CASES.values())
        print(f"\nschemathesis: {total} cases in {len(CASES)} operations")
        for label, statuses in sorted(CASES.items()):
            print(f"  {label}: {dict(sorted(statuses.items()))}")


def _sometimes(value: Any, *alternatives: Any) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(value), st.sampled_from(alternatives))


def _register_hooks(schema: schemathesis.BaseSchema, seeds: list[Seeded]) -> None:
    """Hooks run while cases are drawn, so `seeds` is read then, after the fixture has filled it."""
    sleep_task = PUBLISHED_TASKS["sleep"]

    @schema.hook
    def flatmap_path_parameters(
        context: schemathesis.HookContext, path_parameters: dict[str, Any]
    ) -> st.SearchStrategy[Any]:
        if not seeds or not isinstance(path_parameters, dict) or "run_id" not in path_parameters:
            return st.just(path_parameters)
        seed = seeds[0]
        operation = context.operation
        ids = seed.finished if operation is not None and operation.path in STREAMS else seed.runs
        return _sometimes(path_parameters, *({**path_parameters, "run_id": run_id} for run_id in ids))

    @schema.hook
    def flatmap_query(context: schemathesis.HookContext, query: dict[str, Any]) -> st.SearchStrategy[Any]:
        if not seeds or not isinstance(query, dict):
            return st.just(query)
        seed = seeds[0]
        if "tenant_id" in query:
            return _sometimes(query, {**query, "tenant_id": seed.tenant})
        if "task_id" in query:
            return _sometimes(query, {**query, "task_id": str(sleep_task.id)})
        if "parent_id" in query:
            return _sometimes(query, {**query, "parent_id": seed.runs[-1]})
        return st.just(query)

    @schema.hook
    def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
        if not seeds or not isinstance(body, dict):
            return st.just(body)
        seed = seeds[0]
        path = context.operation.path if context.operation is not None else ""
        if path == "/v1/taxonomy/runs":
            return _sometimes(body, {**body, "tenant_id": seed.tenant})
        if path == "/api/v1/data-products/runs":
            return _sometimes(
                body,
                {**body, "taskName": "sleep"},
                {**body, "taskName": "sleep", "context": {"duration": 0.5, "steps": 2}},
            )
        if path == "/v1/runs":
            return _sometimes(body, {**body, "kind": "sleep"}, {**body, "kind": "sleep", "params": {}})
        return st.just(body)


def _document() -> dict[str, Any]:
    """The document the app serves at /openapi.json. Operations are parametrized at collection, before
    any fixture exists, so it comes from an app that is never started: no setting shapes the document.

    (`schemathesis.pytest.from_fixture` would load it from the started app instead, but does not run on
    this pytest: it sets `Item._nodeid`, which pytest no longer has.)
    """
    placeholder = Settings(database_url="postgresql://openapi@127.0.0.1:1/openapi", redis_url="redis://x")
    return create_app(placeholder).openapi()


SCHEMA = schemathesis.openapi.from_dict(_document())
SEED: list[Seeded] = []  # the module's seeded tenant, for the hooks (filled by the `seeded` fixture)
_register_hooks(SCHEMA, SEED)


@pytest.fixture(scope="module")
def fuzz_app(settings: Settings, engine: Engine) -> Iterator[FastAPI]:
    """The app the requests reach, in process with its lifespan (schemathesis's ASGI client runs it)."""
    idle = settings.model_copy(
        update={
            "queue_prefix": f"idle{uuid.uuid4().hex[:8]}",
            # A burst from one key: a rate limit would turn most cases into 429s that test nothing.
            "rate_limit_per_second": 1e6,
            "rate_limit_burst": 10**6,
        }
    )
    app = create_app(idle, engine)
    assert app.openapi() == SCHEMA.raw_schema, "the fuzzed document is not the one the app serves"
    yield app
    asgi.shutdown_lifespans()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@SCHEMA.parametrize()
def test_every_operation_answers_as_documented(
    case: schemathesis.Case[Any], fuzz_app: FastAPI, seeded: Seeded
) -> None:
    started = time.monotonic()
    response = case.call_and_validate(
        headers={"Authorization": f"Bearer {seeded.key}"},
        checks=CHECKS,
        timeout=TIMEOUT_SECONDS,
        app=fuzz_app,
    )
    assert time.monotonic() - started < TIMEOUT_SECONDS, "a request ran into the read timeout"
    CASES[f"{case.operation.method.upper()} {case.operation.path}"][response.status_code] += 1
