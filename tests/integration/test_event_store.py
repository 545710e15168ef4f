"""The event store against a real PostgreSQL: optimistic concurrency and commit-ordered read_all."""

from __future__ import annotations

import random
import threading
import time
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from orchestrator.store.events import ConcurrencyError, append, read_all, read_stream
from schemas.events import ProgressReported, RunCreated

TENANT = "store-tests"


def _created(stream: uuid.UUID) -> RunCreated:
    return RunCreated(run_id=stream, tenant_id=TENANT, kind="sleep")


def test_append_and_read_stream(engine: Engine) -> None:
    stream = uuid.uuid4()
    with engine.begin() as conn:
        first = append(conn, stream, TENANT, [_created(stream)], 0)
        more = append(
            conn,
            stream,
            TENANT,
            [ProgressReported(attempt=1, done=1), ProgressReported(attempt=1, done=2)],
            1,
        )
    assert [e.version for e in first + more] == [1, 2, 3]
    with engine.connect() as conn:
        stored = read_stream(conn, stream)
    assert [e.type for e in stored] == ["RunCreated", "ProgressReported", "ProgressReported"]
    assert stored[2].to_event() == ProgressReported(attempt=1, done=2)
    assert [e.position for e in stored] == sorted(e.position for e in stored)


@pytest.mark.parametrize("expected", [0, 2, 7])
def test_version_clash_raises_a_typed_error(engine: Engine, expected: int) -> None:
    stream = uuid.uuid4()
    with engine.begin() as conn:
        append(conn, stream, TENANT, [_created(stream)], 0)
    with pytest.raises(ConcurrencyError) as caught, engine.begin() as conn:
        append(conn, stream, TENANT, [ProgressReported(attempt=1, done=1)], expected)
    assert caught.value.actual == 1 and caught.value.expected == expected


def test_one_winner_among_concurrent_appenders(engine: Engine) -> None:
    """Threads append at the same expected version: exactly one wins each round, versions stay contiguous."""
    stream = uuid.uuid4()
    with engine.begin() as conn:
        append(conn, stream, TENANT, [_created(stream)], 0)
    threads, rounds = 8, 25
    for round_no in range(rounds):
        barrier = threading.Barrier(threads)
        results: list[str] = []

        def contender(
            version: int = round_no + 1, barrier: threading.Barrier = barrier, results: list[str] = results
        ) -> None:
            barrier.wait()
            try:
                with engine.begin() as conn:
                    append(conn, stream, TENANT, [ProgressReported(attempt=1, done=version)], version)
                results.append("won")
            except ConcurrencyError:
                results.append("conflict")
            except Exception as exc:  # pragma: no cover - any other error fails the test
                results.append(f"error:{type(exc).__name__}")

        workers = [threading.Thread(target=contender) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert sorted(results) == ["conflict"] * (threads - 1) + ["won"], results
    with engine.connect() as conn:
        versions = [e.version for e in read_stream(conn, stream)]
    assert versions == list(range(1, rounds + 2))


def test_read_all_never_skips_a_late_commit(engine: Engine) -> None:
    """Writers hold their transactions open for random times (some roll back) while readers tail the
    log by position. Every reader must see exactly the committed events, once each, in one order."""
    writers, appends_each = 8, 150
    committed: set[uuid.UUID] = set()
    committed_lock = threading.Lock()
    with engine.connect() as conn:
        start = conn.execute(sa.text("SELECT coalesce(max(position), 0) FROM events")).scalar_one()
    done = threading.Event()

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(appends_each):
            stream = uuid.uuid4()
            conn = engine.connect()
            tx = conn.begin()
            try:
                append(conn, stream, TENANT, [_created(stream)], 0)
                time.sleep(
                    rng.uniform(0, 0.004)
                )  # hold the append open: commits land out of order if allowed
                if rng.random() < 0.1:
                    tx.rollback()
                else:
                    tx.commit()
                    with committed_lock:
                        committed.add(stream)
            finally:
                conn.close()

    seen: list[list[tuple[int, uuid.UUID]]] = [[] for _ in range(3)]

    def reader(index: int) -> None:
        position = start
        while True:
            finished = done.is_set()
            with engine.connect() as conn:
                batch = read_all(conn, after=position, limit=200)
            for event in batch:
                if event.tenant_id == TENANT and event.type == "RunCreated":
                    seen[index].append((event.position, event.stream_id))
                position = event.position
            if finished and not batch:
                return
            if not batch:
                time.sleep(0.002)

    readers = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    writer_threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for t in readers + writer_threads:
        t.start()
    for t in writer_threads:
        t.join()
    done.set()
    for t in readers:
        t.join()
    assert len(committed) > writers * appends_each * 0.8
    for observed in seen:
        positions = [p for p, _ in observed]
        assert positions == sorted(set(positions)), "repeated or out of order"
        assert {s for _, s in observed} == committed, (
            "a committed event was skipped or a rolled-back one seen"
        )
    assert seen[0] == seen[1] == seen[2]
