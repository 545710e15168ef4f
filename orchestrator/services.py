"""The only write path: load a run's stream, fold, decide, append; in one transaction.

API routes, CLI commands, Celery tasks and the reconciler are thin adapters onto RunService.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from orchestrator import correlation, tracing
from orchestrator.domain.commands import Cancel, Command, CreateRun, ParkAttempt, Resume, StartAttempt
from orchestrator.domain.decide import decide
from orchestrator.domain.errors import DomainError, IllegalTransition
from orchestrator.domain.lifecycle import is_terminal
from orchestrator.domain.retry import retry_at
from orchestrator.domain.state import RunState, fold
from orchestrator.folded_states import FoldedStates
from orchestrator.policies import POLICIES
from orchestrator.settings import Settings
from orchestrator.store import children, idempotency, leases, outbox, slots
from orchestrator.store.events import (
    ConcurrencyError,
    NewStream,
    RecordedEvent,
    append,
    append_new_streams,
    has_event,
    lock_stream,
    read_run_stream,
    read_stream_from_version,
    read_streams,
)
from orchestrator.workflows.outcomes import ChildOutcome, summarize
from schemas.events import (
    TERMINAL_EVENT_TYPES,
    AttemptFailed,
    AttemptLost,
    CancelRequested,
    RunCreated,
    RunParked,
)
from schemas.jobs import JOB_KINDS
from schemas.runs import RunStatus

RETRYABLE = frozenset({RunStatus.FAILED, RunStatus.CANCELED})
_CONFLICT_RETRIES = 12
_CONFLICT_BACKOFF_SECONDS = 0.002  # doubled per clash, jittered, capped at 0.1 s


class RunNotFound(Exception):
    """No run with that id for this tenant (another tenant's run is reported the same way)."""


class InvalidRequest(Exception):
    """Input that fails validation; `errors` has the FastAPI `{loc, msg, type}` shape."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("invalid request")
        self.errors = errors


class IdempotencyConflict(Exception):
    """An Idempotency-Key reused with a different request body."""


class RunContended(Exception):
    """The run kept changing under the command (a job writing fast); nothing was applied, retry."""


class StoreUnavailable(Exception):
    """The database could not be reached (down, restarting, connections dropped); nothing was applied."""


@contextmanager
def _store_errors() -> Iterator[None]:
    """The store's failures in the service's own words, so callers never depend on the storage library."""
    try:
        yield
    except OperationalError:
        raise StoreUnavailable("database unavailable") from None


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
    priority: int = 0
    not_before: datetime | None = None
    retry_of: UUID | None = None


@dataclass(frozen=True)
class Outcome:
    """What a command did: the run's state after it, the events it appended (maybe none), and the run's
    whole stream as it stands after it, from which a caller answers without reading anything again."""

    run_id: UUID
    state: RunState
    recorded: list[RecordedEvent]
    stream: list[RecordedEvent]
    created: bool = False

    @property
    def position(self) -> int:
        """The log position of the stream's newest event: the read-your-writes point for the caller."""
        return self.stream[-1].position


def validate_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """A submission's kind and params as every submission checks them; InvalidRequest when they fail."""
    return _validate_params(kind, params)


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
    body: dict[str, Any] = {
        "kind": request.kind,
        "params": request.params,
        "task": request.task,
        "parent": str(request.parent_id),
        "attributes": request.attributes,
        "labels": request.labels,
        "retry_of": str(request.retry_of),
    }
    # Only when set, so the keys of requests made before runs had them still match their retries.
    if request.priority:
        body["priority"] = request.priority
    if request.not_before is not None:
        body["not_before"] = request.not_before.isoformat()
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


class RunService:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._folded = FoldedStates()

    # ---- submission -------------------------------------------------------------------------------
    def submit(self, request: SubmitRequest, conn: Connection | None = None) -> Outcome:
        """Record RunCreated and its dispatch intent in one transaction (no dual write). With an
        idempotency key, a retry answers the run the first request created. With `conn`, in the caller's
        transaction (the scheduler's, which records the firing with it); the commit is then the caller's."""
        return self._submit_all([request], lambda _index: ["body"], conn)[0]

    def submit_batch(self, requests: Sequence[SubmitRequest]) -> list[Outcome]:
        """Submit many runs atomically: all are recorded, with their dispatch intents, in one transaction
        of a few statements, or none is. Each item is idempotent by its own key as `submit` is; an item
        whose key an earlier request used answers that request's run. Outcomes are in request order."""
        return self._submit_all(requests, lambda index: ["body", "runs", index])

    def _submit_all(
        self,
        requests: Sequence[SubmitRequest],
        at: Callable[[int], list[Any]],
        within: Connection | None = None,
    ) -> list[Outcome]:
        """The one submission path; `at(i)` is where request i's fields sit in the body, for errors."""
        invalid: list[dict[str, Any]] = []
        params: list[dict[str, Any]] = []
        keys: dict[str, int] = {}
        latest_start = datetime.now(UTC) + timedelta(seconds=self.settings.max_delay_seconds)
        for index, request in enumerate(requests):
            try:
                params.append(_validate_params(request.kind, request.params))
            except InvalidRequest as exc:
                invalid += [{**err, "loc": [*at(index), *err["loc"][1:]]} for err in exc.errors]
            if request.not_before is not None and request.not_before > latest_start:
                invalid.append(
                    {
                        "loc": [*at(index), "not_before"],
                        "msg": f"not_before is more than {self.settings.max_delay_seconds:g} seconds ahead",
                        "type": "value_error",
                    }
                )
            key = request.idempotency_key
            if key is not None and keys.setdefault(key, index) != index:
                loc = [*at(index), "idempotency_key"]
                invalid.append(
                    {"loc": loc, "msg": "idempotency_key repeats within the batch", "type": "value_error"}
                )
        if invalid:
            raise InvalidRequest(invalid)
        tenants = {request.tenant_id for request in requests}
        if len(tenants) != 1:  # the API gives a batch its caller's tenant; mixing them is a caller's bug
            raise ValueError("a batch belongs to one tenant")
        tenant_id = tenants.pop()
        run_ids = [uuid.uuid4() for _ in requests]
        claims = {
            request.idempotency_key: (_request_hash(request), run_id)
            for request, run_id in zip(requests, run_ids, strict=True)
            if request.idempotency_key is not None
        }
        transaction = nullcontext(within) if within is not None else self.engine.begin()
        with _store_errors(), transaction as conn:
            try:
                earlier = idempotency.claim_many(conn, tenant_id, claims)
            except idempotency.KeyReused as exc:
                raise IdempotencyConflict(
                    f"Idempotency-Key {exc.args[0]!r} was already used with a different request"
                ) from None
            existing = read_streams(conn, sorted(set(earlier.values())), tenant_id) if earlier else {}
            fresh: list[NewStream] = []
            dispatches: list[outbox.FirstAttempt] = []
            for index, (request, run_id, valid) in enumerate(zip(requests, run_ids, params, strict=True)):
                if request.idempotency_key in earlier:
                    continue
                parent = self._parent_state(conn, request) if request.parent_id else None
                if parent is not None and parent.depth + 1 > self.settings.max_run_depth:
                    msg = f"a child here would be {parent.depth + 1} levels deep; the limit is "
                    msg += f"{self.settings.max_run_depth} (ORCH_MAX_RUN_DEPTH)"
                    loc = [*at(index), "parent_run_id"]
                    raise InvalidRequest([{"loc": loc, "msg": msg, "type": "value_error"}])
                command = self._create_command(request, valid, run_id, parent)
                metadata = _metadata(request.actor, tenant_id, command.root_id or run_id)
                fresh.append(NewStream(run_id, tenant_id, decide(RunState(), command), metadata))
                queue = self.settings.queue_name(JOB_KINDS[request.kind].queue)
                dispatches.append(
                    outbox.FirstAttempt(
                        run_id,
                        tenant_id,
                        request.kind,
                        queue,
                        request.priority,
                        request.not_before,
                        request_id=correlation.current(),
                        trace_context=tracing.carrier(),
                    )
                )
            outbox.enqueue_first_attempts(conn, dispatches)
            # The append goes last, right before the commit: whole-log readers wait for appends in flight
            # (store.events.APPEND_LOCK_KEY), so the less an append holds its transaction open the better.
            created = dict(zip((f.stream_id for f in fresh), append_new_streams(conn, fresh), strict=True))
        outcomes = []
        for request, run_id in zip(requests, run_ids, strict=True):
            if request.idempotency_key in earlier:
                earlier_id = earlier[request.idempotency_key]
                stream = existing[earlier_id]
                outcomes.append(Outcome(earlier_id, fold(r.to_event() for r in stream), stream[:1], stream))
            else:
                stream = created[run_id]
                outcomes.append(Outcome(run_id, fold(r.to_event() for r in stream), stream, stream, True))
        return outcomes

    def _create_command(
        self, request: SubmitRequest, params: dict[str, Any], run_id: UUID, parent: RunState | None
    ) -> CreateRun:
        return CreateRun(
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
            priority=request.priority,
            not_before=request.not_before,
            retry_of=request.retry_of,
        )

    def _parent_state(self, conn: Connection, request: SubmitRequest) -> RunState:
        """The parent as it stands, with its children lock held until this submission commits: a run that
        is finished or being canceled takes no new child (a cascading cancel could miss it)."""
        assert request.parent_id is not None
        children.hold_for_new_child(conn, request.parent_id)
        recorded = read_run_stream(conn, request.parent_id, tenant_id=request.tenant_id)
        if not recorded:
            raise InvalidRequest(
                [{"loc": ["body", "parent_run_id"], "msg": "parent run not found", "type": "value_error"}]
            )
        parent = fold(r.to_event() for r in recorded)
        if parent.status is not None and is_terminal(parent.status):
            raise IllegalTransition(f"the parent run is already {parent.status.value}")
        if parent.cancel_requested:
            raise IllegalTransition("the parent run is being canceled")
        return parent

    def retry(
        self, tenant_id: str, run_id: UUID, actor: str = "api", idempotency_key: str | None = None
    ) -> Outcome:
        """A failed or canceled run again, as a new top-level run of the same kind, task, params, labels and
        attributes whose RunCreated names the old one (`retry_of`). The old run's log stays as it is: events
        are facts. Top-level because the old run's parent has usually finished and would take no child."""
        with _store_errors(), self.engine.connect() as conn:
            stream = read_run_stream(conn, run_id, tenant_id=tenant_id)
        if not stream:
            raise RunNotFound(str(run_id))
        old = fold(r.to_event() for r in stream)
        if old.status not in RETRYABLE:
            now = old.status.value if old.status else "unknown"
            raise IllegalTransition(f"only a failed or canceled run can be retried; this one is {now}")
        created = stream[0].to_event()
        assert isinstance(created, RunCreated), "a stream starts with RunCreated"
        request = SubmitRequest(
            tenant_id=tenant_id,
            kind=created.kind,
            params=created.params,
            task=created.task,
            labels=created.labels,
            attributes=created.attributes,
            idempotency_key=idempotency_key,
            actor=actor,
            retry_of=run_id,
        )
        return self.submit(request)

    # ---- commands on existing runs ----------------------------------------------------------------
    def cancel(self, tenant_id: str, run_id: UUID, actor: str = "api", reason: str | None = None) -> Outcome:
        """Cancel the run, then every live descendant, level by level from the log (not a read model that may
        lag). Asked again, it sweeps the tree again: a retried cancel finishes what a crash interrupted."""
        outcome = self.execute(run_id, Cancel(reason=reason), tenant_id=tenant_id, actor=actor)
        self._cancel_descendants(tenant_id, run_id, actor)
        return outcome

    def _cancel_descendants(self, tenant_id: str, root: UUID, actor: str) -> None:
        parents, seen = [root], {root}
        while parents:
            parent = parents.pop()
            with _store_errors(), self.engine.begin() as conn:
                found = children.children_of(conn, tenant_id, parent)
            for child in found:
                # A child that finished already raises; its own children are still looked at below.
                with contextlib.suppress(DomainError):
                    self.execute(child, Cancel(reason="parent canceled"), tenant_id=tenant_id, actor=actor)
                if child not in seen:
                    seen.add(child)
                    parents.append(child)

    def start_attempt(self, run_id: UUID, attempt: int, worker: str) -> Outcome | None:
        """Start `attempt`, or None when the run is finished or that attempt is not next (drop it)."""
        try:
            return self.execute(run_id, StartAttempt(attempt=attempt, worker=worker), actor=worker)
        except (DomainError, RunNotFound):
            self._release_if_finished(run_id)
            return None

    def _release_if_finished(self, run_id: UUID) -> None:
        """A message for a run that ended before it was published (a pending run canceled while the relay
        published it) took a slot nothing else gives back; its dropped delivery does."""
        with _store_errors(), self.engine.begin() as conn:
            if any(has_event(conn, run_id, kind) for kind in sorted(TERMINAL_EVENT_TYPES)):
                slots.release(conn, run_id)

    def execute(
        self,
        run_id: UUID,
        command: Command,
        *,
        tenant_id: str | None = None,
        actor: str = "system",
        whole_stream: bool = True,
    ) -> Outcome:
        """Fold, decide and append with the folded version; on a version clash, decide again afresh.

        With `whole_stream` false (a worker reporting on its own run, which answers nobody with the run's
        view), the fold starts from the state this process committed last and reads only the events
        since, and the outcome's `stream` holds just those.

        A jittered, growing pause between tries: a job appending a chunk every few milliseconds used to win
        every one of eight back-to-back tries against a cancel, which answered 409 "changing too fast"."""
        for clash in range(_CONFLICT_RETRIES):
            try:
                with _store_errors(), self.engine.begin() as conn:
                    outcome = self._execute_once(conn, run_id, command, tenant_id, actor, whole_stream)
                self._folded.put(run_id, outcome.state)  # committed: a later fold may start from it
                return outcome
            except ConcurrencyError:
                time.sleep(random.uniform(0, min(0.1, _CONFLICT_BACKOFF_SECONDS * 2**clash)))
        raise RunContended(str(run_id))

    def _execute_once(
        self,
        conn: Connection,
        run_id: UUID,
        command: Command,
        tenant_id: str | None,
        actor: str,
        whole_stream: bool,
    ) -> Outcome:
        lock_stream(conn, run_id)
        # A folded state is only ever a run's (put from a run's stream), so its tail needs no check of kind.
        folded = None if whole_stream or tenant_id is not None else self._folded.get(run_id)
        tail = read_stream_from_version(conn, run_id, folded.version) if folded else []
        if folded and tail and tail[0].version == folded.version:
            # The tail starts with the last event folded (read again to prove the stream still holds it).
            stored = tail
            state = fold((r.to_event() for r in tail[1:]), folded)
        else:
            stored = read_run_stream(conn, run_id, tenant_id=tenant_id)
            if not stored:
                self._folded.forget(run_id)
                raise RunNotFound(str(run_id))
            state = fold(r.to_event() for r in stored)
        if isinstance(command, ParkAttempt):
            # Counted under the stream lock that every child's terminal write takes too (store.children).
            unfinished = children.unfinished(conn, state.tenant_id, command.awaiting)
            command = replace(command, unfinished=unfinished)
        return self._decide_and_append(conn, run_id, state, stored, command, actor)

    def _decide_and_append(
        self,
        conn: Connection,
        run_id: UUID,
        state: RunState,
        stored: list[RecordedEvent],
        command: Command,
        actor: str,
    ) -> Outcome:
        new_events = decide(state, command)
        after = fold(new_events, state)
        for event in new_events:
            policy = POLICIES.get(type(event))
            if policy is not None:
                policy(self, conn, after, event)
        if after.status is not None and is_terminal(after.status):
            leases.release(conn, run_id)
        if (after.status is not None and is_terminal(after.status)) or any(
            isinstance(event, AttemptFailed | AttemptLost | RunParked) for event in new_events
        ):
            # The run or its attempt ended (a parked run's too: a parent waiting on its children must not
            # hold the slot they need): its tenant may dispatch another.
            slots.release(conn, run_id)
        # Last, right before the commit (see submit): the side effects above commit with it or not at all.
        metadata = _metadata(actor, state.tenant_id, state.root_id or run_id)
        recorded = append(conn, run_id, state.tenant_id, new_events, state.version, metadata)
        return Outcome(run_id, after, recorded, [*stored, *recorded])

    def resume_if_ready(
        self, conn: Connection, run_id: UUID, tenant_id: str, ended: UUID | None = None
    ) -> bool:
        """Resume the run if it is parked and every child it awaits has ended (`ended` counts as ended: its
        terminal event is being written in this very transaction). Takes the run's stream lock first."""
        lock_stream(conn, run_id)
        stored = read_run_stream(conn, run_id, tenant_id=tenant_id)
        if not stored:
            return False
        state = fold(r.to_event() for r in stored)
        if state.parked_on is None or state.status is None or is_terminal(state.status):
            return False
        if children.unfinished(conn, tenant_id, [c for c in state.awaiting if c != ended]):
            return False
        self._decide_and_append(conn, run_id, state, stored, Resume(state.parked_on), "orchestrator")
        return True

    def resume_parked(self, run_id: UUID, tenant_id: str) -> bool:
        """The reconciler's safety net for a resume that the children's writes did not make."""
        with _store_errors(), self.engine.begin() as conn:
            return self.resume_if_ready(conn, run_id, tenant_id)

    def queue_for(self, kind: str) -> str:
        job = JOB_KINDS.get(kind)
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
        with _store_errors(), self.engine.connect() as conn:
            return has_event(conn, run_id, CancelRequested.type)

    def child_outcomes(self, tenant_id: str, run_ids: Sequence[UUID]) -> list[ChildOutcome]:
        """How each of `run_ids` stands, from its own stream (never a read model that may lag), in order."""
        with _store_errors(), self.engine.connect() as conn:
            streams = read_streams(conn, list(run_ids), tenant_id)
        return [summarize(run_id, (r.to_event() for r in streams.get(run_id, []))) for run_id in run_ids]

    def renew_lease(self, run_id: UUID, attempt: int) -> bool:
        with _store_errors(), self.engine.begin() as conn:
            return leases.renew(conn, run_id, attempt, self.settings.lease_seconds)


def _metadata(actor: str, tenant_id: str, correlation_id: UUID) -> dict[str, Any]:
    """Who caused the events (actor), which command (causation), which run tree (correlation) and, when
    one is bound, which API request (see orchestrator.correlation; a worker binds its run's)."""
    metadata = {
        "actor": actor,
        "tenant_id": tenant_id,
        "causation_id": str(uuid.uuid4()),
        "correlation_id": str(correlation_id),
    }
    request_id = correlation.current()
    if request_id is not None:
        metadata[correlation.KEY] = request_id
    return metadata
