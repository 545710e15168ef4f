"""The only write path: load a run's stream, fold, decide, append; in one transaction.

API routes, CLI commands, Celery tasks and the reconciler are thin adapters onto RunService.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection, Engine

from orchestrator.domain.commands import Cancel, Command, CreateRun, StartAttempt
from orchestrator.domain.decide import decide
from orchestrator.domain.errors import DomainError
from orchestrator.domain.lifecycle import is_terminal
from orchestrator.domain.retry import retry_at
from orchestrator.domain.state import RunState, fold
from orchestrator.settings import Settings
from orchestrator.store import leases, outbox
from orchestrator.store.events import ConcurrencyError, RecordedEvent, append, read_stream
from orchestrator.store.schema import events as events_table
from orchestrator.store.schema import idempotency_keys
from schemas.events import AttemptFailed, AttemptLost, CancelRequested, Event, RunStarted
from schemas.jobs import JOB_KINDS

_CONFLICT_RETRIES = 8


class RunNotFound(Exception):
    """No run with that id for this tenant (another tenant's run is reported the same way)."""


class InvalidRequest(Exception):
    """Input that fails validation; `errors` has the FastAPI `{loc, msg, type}` shape."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("invalid request")
        self.errors = errors


class IdempotencyConflict(Exception):
    """An Idempotency-Key reused with a different request body."""


@dataclass(frozen=True)
class SubmitRequest:
    tenant_id: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    task: str | None = None
    parent_id: UUID | None = None
    labels: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    actor: str = "api"


@dataclass(frozen=True)
class Outcome:
    run_id: UUID
    state: RunState
    recorded: list[RecordedEvent]
    created: bool = False

    @property
    def position(self) -> int:
        return self.recorded[-1].position if self.recorded else 0


def _validate_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    job = JOB_KINDS.get(kind)
    if job is None:
        known = ", ".join(sorted(JOB_KINDS))
        raise InvalidRequest(
            [{"loc": ["body", "kind"], "msg": f"unknown kind; known kinds: {known}", "type": "value_error"}]
        )
    try:
        return job.params_model.model_validate(params).model_dump(mode="json")
    except ValidationError as exc:
        raise InvalidRequest(
            [
                {"loc": ["body", "params", *err["loc"]], "msg": err["msg"], "type": err["type"]}
                for err in exc.errors(include_url=False, include_context=False, include_input=False)
            ]
        ) from None


def _request_hash(request: SubmitRequest) -> str:
    body = {
        "kind": request.kind,
        "params": request.params,
        "task": request.task,
        "parent": str(request.parent_id),
        "attributes": request.attributes,
        "labels": request.labels,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


class RunService:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    # ---- submission -------------------------------------------------------------------------------
    def submit(self, request: SubmitRequest) -> Outcome:
        """Record RunCreated and its dispatch intent in one transaction (no dual write)."""
        params = _validate_params(request.kind, request.params)
        queue = self.settings.queue_name(JOB_KINDS[request.kind].queue)
        run_id = uuid.uuid4()
        with self.engine.begin() as conn:
            if request.idempotency_key is not None:
                existing = self._claim_idempotency_key(conn, request, run_id)
                if existing is not None:
                    return self._existing(conn, request.tenant_id, existing)
            parent = self._parent_state(conn, request) if request.parent_id else None
            command = CreateRun(
                run_id=run_id,
                tenant_id=request.tenant_id,
                kind=request.kind,
                params=params,
                task=request.task,
                parent_id=request.parent_id,
                root_id=(parent.root_id if parent else None) or run_id,
                depth=parent.depth + 1 if parent else 0,
                max_attempts=self.settings.max_attempts,
                labels=request.labels,
                attributes=request.attributes,
            )
            new_events = decide(RunState(), command)
            metadata = _metadata(request.actor, request.tenant_id, command.root_id or run_id)
            recorded = append(conn, run_id, request.tenant_id, new_events, 0, metadata)
            outbox.enqueue(conn, run_id, request.tenant_id, 1, queue)
            return Outcome(run_id, fold(new_events), recorded, created=True)

    def _claim_idempotency_key(self, conn: Connection, request: SubmitRequest, run_id: UUID) -> UUID | None:
        """Insert the key or return the run it already names. A concurrent holder makes us wait for it."""
        digest = _request_hash(request)
        inserted = conn.execute(
            insert(idempotency_keys)
            .values(
                tenant_id=request.tenant_id, key=request.idempotency_key, request_hash=digest, run_id=run_id
            )
            .on_conflict_do_nothing()
            .returning(idempotency_keys.c.run_id)
        ).first()
        if inserted is not None:
            return None
        row = conn.execute(
            sa.select(idempotency_keys.c.run_id, idempotency_keys.c.request_hash).where(
                idempotency_keys.c.tenant_id == request.tenant_id,
                idempotency_keys.c.key == request.idempotency_key,
            )
        ).one()
        if row.request_hash != digest:
            raise IdempotencyConflict("Idempotency-Key was already used with a different request")
        return UUID(str(row.run_id))

    def _existing(self, conn: Connection, tenant_id: str, run_id: UUID) -> Outcome:
        recorded = read_stream(conn, run_id, tenant_id=tenant_id)
        return Outcome(run_id, fold(r.to_event() for r in recorded), recorded[:1], created=False)

    def _parent_state(self, conn: Connection, request: SubmitRequest) -> RunState:
        assert request.parent_id is not None
        recorded = read_stream(conn, request.parent_id, tenant_id=request.tenant_id)
        if not recorded:
            raise InvalidRequest(
                [{"loc": ["body", "parent_run_id"], "msg": "parent run not found", "type": "value_error"}]
            )
        return fold(r.to_event() for r in recorded)

    # ---- commands on existing runs ----------------------------------------------------------------
    def cancel(self, tenant_id: str, run_id: UUID, actor: str = "api", reason: str | None = None) -> Outcome:
        return self.execute(run_id, lambda _state: Cancel(reason=reason), tenant_id=tenant_id, actor=actor)

    def start_attempt(self, run_id: UUID, attempt: int, worker: str) -> Outcome | None:
        """Start `attempt`, or None when the run is finished or that attempt is not next (drop it)."""
        try:
            return self.execute(run_id, lambda _s: StartAttempt(attempt=attempt, worker=worker), actor=worker)
        except (DomainError, RunNotFound):
            return None

    def execute(
        self,
        run_id: UUID,
        make_command: Callable[[RunState], Command],
        *,
        tenant_id: str | None = None,
        actor: str = "system",
    ) -> Outcome:
        """Fold, decide and append with the folded version; on a version clash, decide again."""
        for _ in range(_CONFLICT_RETRIES):
            try:
                with self.engine.begin() as conn:
                    return self._execute_once(conn, run_id, make_command, tenant_id, actor)
            except ConcurrencyError:
                continue
        raise ConcurrencyError(run_id, -1, -1)

    def _execute_once(
        self,
        conn: Connection,
        run_id: UUID,
        make_command: Callable[[RunState], Command],
        tenant_id: str | None,
        actor: str,
    ) -> Outcome:
        stored = read_stream(conn, run_id, tenant_id=tenant_id)
        if not stored:
            raise RunNotFound(str(run_id))
        state = fold(r.to_event() for r in stored)
        new_events = decide(state, make_command(state))
        metadata = _metadata(actor, state.tenant_id, state.root_id or run_id)
        recorded = append(conn, run_id, state.tenant_id, new_events, state.version, metadata)
        after = fold(new_events, state)
        self._apply_policies(conn, state, after, new_events)
        return Outcome(run_id, after, recorded)

    def _apply_policies(self, conn: Connection, before: RunState, after: RunState, new: list[Event]) -> None:
        """Side effects that must commit with the events: leases and scheduled retries."""
        assert after.run_id is not None
        for event in new:
            if isinstance(event, RunStarted):
                worker = event.worker or "unknown"
                leases.grant(
                    conn, after.run_id, after.tenant_id, event.attempt, worker, self.settings.lease_seconds
                )
            elif isinstance(event, AttemptFailed | AttemptLost):
                leases.release(conn, after.run_id)
                if event.retry_at is not None and not is_terminal(after.status or before.status):  # type: ignore[arg-type]
                    outbox.enqueue(
                        conn,
                        after.run_id,
                        after.tenant_id,
                        event.attempt + 1,
                        self._queue_for(after),
                        event.retry_at,
                    )
        if after.status is not None and is_terminal(after.status):
            leases.release(conn, after.run_id)

    def _queue_for(self, state: RunState) -> str:
        job = JOB_KINDS.get(state.kind)
        return self.settings.queue_name(job.queue if job else "short")

    # ---- helpers for workers and the reconciler ---------------------------------------------------
    def next_retry_at(self, attempt: int) -> datetime:
        return retry_at(
            datetime.now(UTC),
            attempt,
            self.settings.retry_base_seconds,
            self.settings.retry_max_seconds,
            random.random(),
        )

    def cancel_requested(self, run_id: UUID) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(sa.literal(1)).where(
                    events_table.c.stream_id == run_id, events_table.c.type == CancelRequested.type
                )
            ).first()
        return found is not None

    def renew_lease(self, run_id: UUID, attempt: int) -> bool:
        with self.engine.begin() as conn:
            return leases.renew(conn, run_id, attempt, self.settings.lease_seconds)

    def load(self, run_id: UUID, tenant_id: str | None = None) -> RunState:
        with self.engine.connect() as conn:
            stored = read_stream(conn, run_id, tenant_id=tenant_id)
        if not stored:
            raise RunNotFound(str(run_id))
        return fold(r.to_event() for r in stored)


def _metadata(actor: str, tenant_id: str, correlation_id: UUID) -> dict[str, Any]:
    """Who caused the events (actor), which command (causation) and which run tree (correlation)."""
    return {
        "actor": actor,
        "tenant_id": tenant_id,
        "causation_id": str(uuid.uuid4()),
        "correlation_id": str(correlation_id),
    }
