"""The API under fire: SIGKILLed during submissions retried with Idempotency-Keys (T9), and cancels
racing completions (T16)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import sqlalchemy as sa
from fastapi.testclient import TestClient

from orchestrator.api.app import create_app
from orchestrator.store import keys
from orchestrator.store.schema import events, outbox
from tests.faults.harness import FaultSystem, check_invariant, scale
from tests.services import exceeds, free_port, wait_until

MakeSystem = Callable[..., FaultSystem]


def test_api_sigkilled_during_submissions_makes_no_duplicates(make_system: MakeSystem, tenant: str) -> None:
    port = free_port()
    system = make_system(port=port)
    with system.engine.begin() as conn:
        key, _ = keys.create(conn, tenant)
    for role in ("relay", "project", "reconcile", "worker"):
        system.start(role)
    api = system.start("serve")
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _answers(url), timeout=30, message="API up")
    total = scale(200, 5000)
    idempotency_keys = [f"sub-{uuid.uuid4()}" for _ in range(total)]
    results: dict[str, str] = {}
    lock = threading.Lock()

    # One client per pool thread: building one per submission (an SSL context each) cost more than the
    # submission itself, and at full scale (5,000) the test spent its time there.
    local = threading.local()
    clients: list[httpx.Client] = []

    def client_of_thread() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10)
            with lock:
                clients.append(local.client)
        return local.client  # type: ignore[no-any-return]

    def submit(idem: str) -> None:
        client = client_of_thread()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # a client that retries until answered, with the same key
            try:
                response = client.post("/v1/runs", json={"kind": "sleep"}, headers={"Idempotency-Key": idem})
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            if response.status_code in (200, 201):
                with lock:
                    results[idem] = response.json()["id"]
                return
            assert response.status_code >= 500, response.text
            time.sleep(0.2)
        raise AssertionError("submission never accepted")

    rng = random.Random(5)
    kills = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(submit, idem) for idem in idempotency_keys]
        while kills < scale(3, 10):
            # Kill an API that is serving, not one still importing: once it has accepted a few more
            # submissions, at a random moment while 8 clients have requests in flight.
            accepted_before = len(results)
            wait_until(
                exceeds(results.__len__, min(total - 1, accepted_before + 9)),
                timeout=120,
                message="the API accepting submissions",
            )
            if len(results) == total:
                break
            time.sleep(rng.uniform(0.0, 0.1))
            api.kill()
            kills += 1
            api = system.start("serve")
        for future in futures:
            future.result()
    for client in clients:
        client.close()
    print(f"\nAPI SIGKILLed {kills} times during {total} submissions")
    assert kills >= 3, "the API was killed while submissions were in flight"
    assert len(results) == total
    accepted = {uuid.UUID(run_id) for run_id in results.values()}
    assert len(accepted) == total, "one run per Idempotency-Key"
    with system.engine.connect() as conn:
        created = conn.execute(
            sa.select(events.c.stream_id).where(events.c.tenant_id == tenant, events.c.type == "RunCreated")
        ).scalars()
        dispatched = conn.execute(
            sa.select(outbox.c.run_id).where(outbox.c.tenant_id == tenant, outbox.c.attempt == 1)
        ).scalars()
        created_ids, dispatched_ids = set(created), set(dispatched)
    assert created_ids == accepted, "0 duplicate runs, 0 runs the client never heard of"
    assert dispatched_ids == created_ids, "0 events without an outbox row and vice versa"
    system.wait_all_terminal(tenant, timeout=120)
    check_invariant(system, tenant, list(accepted))


def _started_at(system: FaultSystem, run_id: uuid.UUID) -> float | None:
    with system.engine.connect() as conn:
        at = conn.execute(
            sa.select(events.c.recorded_at).where(events.c.stream_id == run_id, events.c.type == "RunStarted")
        ).scalar()
    return None if at is None else float(at.timestamp())


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_cancels_racing_completion_end_each_run_once(make_system: MakeSystem, tenant: str) -> None:
    # One key sends every request here: lift the per-key rate limit so it is not what answers.
    system = make_system()
    with system.engine.begin() as conn:
        key, _ = keys.create(conn, tenant)
    for role in ("relay", "project", "reconcile", "worker", "worker"):
        system.start(role)
    app = create_app(system.settings, system.engine)
    headers = {"Authorization": f"Bearer {key}"}
    count = scale(40, 1000)
    rng = random.Random(16)
    statuses: Counter[int] = Counter()
    with TestClient(app) as client:
        run_ids = [
            uuid.UUID(
                client.post(
                    "/v1/runs", json={"kind": "sleep", "params": {"duration": 0.3}}, headers=headers
                ).json()["id"]
            )
            for _ in range(count)
        ]

        def race(run_id: uuid.UUID) -> None:
            # The run completes about `duration` after it starts (plus a few ms of writes): aim the
            # cancel at that moment, spread a few ms either side, so both orders happen.
            started = wait_until(lambda: _started_at(system, run_id), timeout=scale(60, 600), interval=0.002)
            assert started is not None
            target = started + 0.3 + rng.uniform(-0.01, 0.02)
            time.sleep(max(0.0, target - time.time()))
            statuses[client.post(f"/v1/runs/{run_id}/cancel", headers=headers).status_code] += 1

        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(race, run_ids))
    system.wait_all_terminal(tenant, timeout=60)
    terminals = check_invariant(system, tenant, run_ids)
    print(f"\ncancel vs completion: HTTP {dict(statuses)}; outcomes {dict(terminals)}")
    assert set(statuses) <= {200, 409}, "losers get 409, never 500"
    assert sum(terminals.values()) == count
