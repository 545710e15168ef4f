"""Scale-out across hosts (issue 16): API x2, worker x3, relay, projector and reconciler, each in a
network namespace of its own, reach PostgreSQL and Redis only over the network. Runs submitted round
robin to both APIs each succeed exactly once, a worker host cut off mid-run loses none of them (its
leases expire and the reconciler hands its runs to the others), and the read model equals a rebuild."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import sqlalchemy as sa

from orchestrator.store import keys
from orchestrator.store.schema import events
from tests.faults.forwarder import Forwarders
from tests.faults.harness import TERMINAL, FaultSystem, check_invariant, scale
from tests.faults.netns import Host, Network, netns_unavailable
from tests.services import RoleProcess, wait_ready, wait_until

MakeSystem = Callable[..., FaultSystem]
API_PORT = 8000  # every host has its own ports, so both APIs take the usual one
# Runs that outlast the cut by far, so the host cut off is certainly one with a run in flight.
LONG_RUNS = 2


@pytest.fixture()
def network() -> Iterator[Network]:
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(f"multi-host test needs network namespaces: {reason}")
    made = Network()
    yield made
    made.remove()


@pytest.fixture()
def forwarders() -> Iterator[Forwarders]:
    running = Forwarders()
    yield running
    running.close()


def _rehost(url: str, host: str, port: int) -> str:
    """`url` with its address replaced (user and path kept)."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}{host}:{port}"))


def _place(system: FaultSystem, forwarders: Forwarders, host: Host, role: str, **env: str) -> RoleProcess:
    """Start `role` on `host`, its database and broker URLs pointing at forwarders on the host's gateway."""
    database, broker = system.settings.database_url or "", system.settings.redis_url or ""
    targets = {}
    for name, url in (("ORCH_DATABASE_URL", database), ("ORCH_REDIS_URL", broker)):
        parts = urlsplit(url)
        port = forwarders.listen(host.gateway, (parts.hostname or "", parts.port or 0))
        targets[name] = _rehost(url, host.gateway, port)
    return system.start(role, prefix=host.prefix, **targets, **env)


def _client(url: str, key: str) -> httpx.Client:
    # trust_env off: a proxy set in the environment must not be asked for the hosts' private addresses.
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30, trust_env=False)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def _submit_round_robin(
    apis: list[str], key: str, payloads: list[dict[str, Any]], first: int = 0
) -> list[tuple[int, str]]:
    """Submission i goes to API (first + i) mod len(apis); returns (api index, run id) per submission, in
    order. Each pool thread keeps one client per API (one per request costs more than the request)."""
    threads = 8
    results: list[tuple[int, str] | None] = [None] * len(payloads)

    def submit_share(share: int) -> None:
        clients = [_client(api, key) for api in apis]
        try:
            for i in range(share, len(payloads), threads):
                which = (first + i) % len(apis)
                response = clients[which].post("/v1/runs", json=payloads[i])
                assert response.status_code == 201, response.text
                results[i] = (which, response.json()["id"])
        finally:
            for client in clients:
                client.close()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(submit_share, share) for share in range(threads)]:
            future.result()
    return [r for r in results if r is not None]


def _attempts(system: FaultSystem, tenant: str) -> dict[uuid.UUID, list[tuple[str, int, int | None]]]:
    """Each run's attempt events in order: (type, attempt, pid of the pool process for a RunStarted)."""
    query = (
        sa.select(events.c.stream_id, events.c.type, events.c.data)
        .where(events.c.tenant_id == tenant, events.c.type.in_(["RunStarted", "AttemptLost", *TERMINAL]))
        .order_by(events.c.stream_id, events.c.version)
    )
    found: dict[uuid.UUID, list[tuple[str, int, int | None]]] = {}
    with system.engine.connect() as conn:
        for run_id, event_type, data in conn.execute(query):
            worker = data.get("worker") if event_type == "RunStarted" else None
            pid = int(worker.rsplit(":", 1)[1]) if worker else None
            found.setdefault(run_id, []).append((event_type, int(data.get("attempt", 0)), pid))
    return found


def _in_flight_on(system: FaultSystem, tenant: str, pids: set[int]) -> set[uuid.UUID]:
    """Runs whose latest attempt was started by one of `pids` and has not ended."""
    flying = set()
    for run_id, log in _attempts(system, tenant).items():
        started = [pid for kind, _, pid in log if kind == "RunStarted"]
        if started and started[-1] in pids and log[-1][0] == "RunStarted":
            flying.add(run_id)
    return flying


def test_runs_across_hosts_succeed_once_through_a_worker_partition(
    network: Network, forwarders: Forwarders, make_system: MakeSystem, tenant: str
) -> None:
    began = time.monotonic()
    # Every run waits in the queue behind hundreds: the fault tests' dispatch timeout (3 s) would have the
    # reconciler publish most of them again (harmless, each copy is dropped, but it doubles the traffic).
    # The lease stays short: a run on the cut-off host is recovered by its lease, not by this timeout.
    system = make_system(worker_concurrency=4, dispatch_timeout_seconds=20.0)
    with system.engine.begin() as conn:
        key, _ = keys.create(conn, tenant)
    api_hosts = [network.add(f"api{i}") for i in (1, 2)]
    worker_hosts = [network.add(f"worker{i}") for i in (1, 2, 3)]
    apis = [
        _place(system, forwarders, host, "serve", ORCH_HOST=host.address, ORCH_PORT=str(API_PORT))
        for host in api_hosts
    ]
    workers = [_place(system, forwarders, host, "worker") for host in worker_hosts]
    core = [_place(system, forwarders, network.add(role), role) for role in ("relay", "project", "reconcile")]
    urls = [f"http://{host.address}:{API_PORT}" for host in api_hosts]
    wait_ready([*apis, *workers, *core], system.engine, system.settings)
    for url in urls:
        wait_until(partial(_answers, url), timeout=60, message=f"API at {url} ready")
    for worker in workers:  # every host consumes before the test starts, so the cut hits a busy one
        system.probe(worker)
    ready = time.monotonic() - began

    count = scale(300, 2000)
    long_runs = [{"kind": "sleep", "params": {"duration": 4, "steps": 4}}] * LONG_RUNS
    short_runs = [{"kind": "sleep", "params": {"duration": 0.05}}] * (count - LONG_RUNS)
    submitted_at = time.monotonic()
    accepted = _submit_round_robin(urls, key, long_runs)
    long_ids = {uuid.UUID(run_id) for _, run_id in accepted}
    # Submissions go on in the background while a worker host is cut off: the API hosts are not.
    with ThreadPoolExecutor(max_workers=1) as background:
        submitting = background.submit(_submit_round_robin, urls, key, short_runs, LONG_RUNS)
        # Cut off a worker host running a long run, in the middle of it: no packet in or out, and the
        # forwarders drop its connections as a server does once it has given up on a dead peer.
        pools = [system.pool_pids(w) for w in workers]

        def hosts_running_a_long_run() -> list[int]:
            return [i for i, pids in enumerate(pools) if _in_flight_on(system, tenant, pids) & long_ids]

        victim = wait_until(hosts_running_a_long_run, timeout=30, interval=0.1, message="a long run started")[
            0
        ]
        host = worker_hosts[victim]
        network.cut(host)
        forwarders.drop(host.gateway)
        cut_at = time.monotonic()
        stranded = _in_flight_on(system, tenant, pools[victim])
        assert stranded & long_ids, "the host was cut off with a run in flight"

        def recovered() -> bool:
            log = _attempts(system, tenant)
            return all(any(kind == "AttemptLost" for kind, _, _ in log[r]) for r in stranded)

        wait_until(recovered, timeout=30, interval=0.2, message="the cut-off host's attempts recovered")
        recovery = time.monotonic() - cut_at
        # The host comes back: its stale attempts may now report, and must change nothing.
        network.heal(host)
        accepted += submitting.result()
    submitted = time.monotonic() - submitted_at
    per_api = Counter(which for which, _ in accepted)
    assert per_api == {0: count // 2 + count % 2, 1: count // 2}, "round robin over both APIs"
    run_ids = [uuid.UUID(run_id) for _, run_id in accepted]
    system.wait_all_terminal(tenant, timeout=120)
    finished = time.monotonic() - submitted_at

    terminals = check_invariant(system, tenant, run_ids)  # includes: the read model equals a rebuild
    assert terminals == {"RunSucceeded": count}, "every run succeeded exactly once"
    attempts = _attempts(system, tenant)
    for run_id, log in attempts.items():
        ((_, won, _),) = [entry for entry in log if entry[0] == "RunSucceeded"]
        assert won == max(a for kind, a, _ in log if kind == "RunStarted"), f"{run_id}: {log}"
    for run_id in stranded:  # what the cut-off host held ran again, on whichever host took it
        assert max(a for kind, a, _ in attempts[run_id] if kind == "RunStarted") > 1, attempts[run_id]
    ran_on = [
        sum(1 for log in attempts.values() for e in log if e[0] == "RunStarted" and e[2] in pids)
        for pids in pools
    ]
    assert all(ran_on), f"every worker host ran runs: {ran_on}"
    for url in urls:  # both API hosts serve the same read model
        with _client(url, key) as client:
            counts = client.get("/v1/runs:counts").json()
        assert counts["data"]["succeeded"] == count and counts["total"] == count, counts
    print(
        f"\nmulti-host: {count} runs over 2 APIs {dict(per_api)}, worker starts per host {ran_on}; ready in"
        f" {ready:.1f}s, submitted in {submitted:.1f}s, all succeeded {finished:.1f}s after the first;"
        f" {len(stranded)} runs stranded on the cut-off host recovered {recovery:.1f}s after the cut"
    )
