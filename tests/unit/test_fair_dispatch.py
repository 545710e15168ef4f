"""The relay's choice (orchestrator.domain.dispatch): round robin across tenants, limits, priorities."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import count

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.domain.dispatch import ALL_KINDS, Candidate, Limits, choose, effective_limits, queue_room

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NONE = Limits({})
_ids = count(1)


def queued(tenant: str, n: int, kind: str = "sleep", priority: int = 0, after: int = 0) -> list[Candidate]:
    """`n` due rows of a tenant, the first queued `after` seconds past T0, one a second after another."""
    return [
        Candidate(next(_ids), tenant, kind, priority, T0 + timedelta(seconds=after + i)) for i in range(n)
    ]


def test_a_single_run_behind_a_long_queue_leaves_in_the_first_round() -> None:
    big, small = queued("a", 10_000), queued("b", 1, after=20_000)
    chosen = choose([*big, *small], {}, NONE, 100)
    assert len(chosen) == 100
    assert [c.tenant_id for c in chosen[:3]] == ["a", "b", "a"]  # a waited longest, so a goes first


def test_rounds_alternate_between_tenants_while_both_have_rows() -> None:
    chosen = choose([*queued("a", 5), *queued("b", 5), *queued("c", 1)], {}, NONE, 7)
    assert [c.tenant_id for c in chosen] == ["a", "b", "c", "a", "b", "a", "b"]


def test_a_tenant_at_its_limit_waits_and_others_go_on() -> None:
    limits = Limits({("a", ALL_KINDS): 2})
    chosen = choose([*queued("a", 5), *queued("b", 3)], {("a", "sleep"): 1}, limits, 100)
    assert Counter(c.tenant_id for c in chosen) == {"a": 1, "b": 3}
    assert choose(queued("a", 5), {("a", "sleep"): 2}, limits, 100) == []


def test_a_kind_at_its_limit_does_not_hold_back_the_tenants_other_kinds() -> None:
    limits = Limits({("a", "taxonomy_build"): 1})
    rows = [*queued("a", 3, "taxonomy_build", priority=9), *queued("a", 2, "sleep")]
    chosen = choose(rows, {("a", "taxonomy_build"): 1}, limits, 100)
    assert [c.kind for c in chosen] == ["sleep", "sleep"]


def test_the_total_counts_every_kind() -> None:
    limits = Limits({("a", ALL_KINDS): 3})
    chosen = choose(queued("a", 5, "sleep"), {("a", "dataset_task"): 2}, limits, 100)
    assert len(chosen) == 1


def test_a_redispatch_of_a_run_holding_its_slot_needs_no_new_one() -> None:
    limits = Limits({("a", ALL_KINDS): 1})
    lost = Candidate(next(_ids), "a", "sleep", 0, T0, holds_slot=True)
    chosen = choose([lost, *queued("a", 3)], {("a", "sleep"): 1}, limits, 100)
    assert chosen == [lost]


def test_higher_priority_first_then_the_longest_waiting() -> None:
    low, high = queued("a", 2, priority=0), queued("a", 2, priority=9, after=10)
    chosen = choose([*low, *high], {}, NONE, 100)
    assert chosen == [*high, *low]


def test_the_default_limit_applies_where_a_tenant_sets_no_total_of_its_own() -> None:
    limits = effective_limits(["a", "b", "c"], {("b", ALL_KINDS): 0, ("c", ALL_KINDS): 7}, 3)
    assert (limits.of("a", ALL_KINDS), limits.of("b", ALL_KINDS), limits.of("c", ALL_KINDS)) == (3, None, 7)
    assert effective_limits(["a"], {}, None).of("a", ALL_KINDS) is None
    assert effective_limits(["a"], {}, 0).of("a", ALL_KINDS) is None


tenants = st.sampled_from(["a", "b", "c"])
kinds = st.sampled_from(["sleep", "dataset_task"])
candidates = st.lists(
    st.builds(
        Candidate,
        id=st.integers(1, 10**6),
        tenant_id=tenants,
        kind=kinds,
        priority=st.integers(0, 9),
        not_before=st.integers(0, 100).map(lambda s: T0 + timedelta(seconds=s)),
        holds_slot=st.booleans(),
    ),
    max_size=40,
    unique_by=lambda c: c.id,
)
limit_maps = st.dictionaries(st.tuples(tenants, st.sampled_from([ALL_KINDS, "sleep"])), st.integers(0, 4))
running_maps = st.dictionaries(st.tuples(tenants, kinds), st.integers(0, 5))


@settings(max_examples=300, deadline=None)
@given(candidates, running_maps, limit_maps, st.integers(1, 50))
def test_no_choice_takes_a_tenant_past_a_limit(
    rows: list[Candidate],
    running: dict[tuple[str, str], int],
    limit_map: dict[tuple[str, str], int],
    batch: int,
) -> None:
    limits = Limits(limit_map)
    chosen = choose(rows, running, limits, batch)
    assert len(chosen) <= batch and len({c.id for c in chosen}) == len(chosen)
    new = [c for c in chosen if not c.holds_slot]
    for (tenant, kind), limit in limit_map.items():
        if not limit:
            continue
        before = sum(n for (t, k), n in running.items() if t == tenant and kind in (ALL_KINDS, k))
        added = sum(1 for c in new if c.tenant_id == tenant and kind in (ALL_KINDS, c.kind))
        assert added == 0 or before + added <= limit
    for tenant in {c.tenant_id for c in chosen}:  # a tenant's choices keep its priority order
        mine = [c.order for c in chosen if c.tenant_id == tenant]
        assert mine == sorted(mine)
    if len(chosen) < batch:  # nothing admissible was left behind
        left = [c for c in rows if c not in chosen]
        assert not [c for c in left if c.holds_slot]


def test_a_full_queue_takes_no_new_run_but_other_queues_go_on() -> None:
    rows = [
        *(Candidate(next(_ids), "a", "sleep", 0, T0, queue="short") for _ in range(3)),
        *(Candidate(next(_ids), "a", "dataset_task", 0, T0, queue="long") for _ in range(3)),
    ]
    chosen = choose(rows, {}, NONE, 100, {"short": 0, "long": 2})
    assert [c.queue for c in chosen] == ["long", "long"]


def test_a_redispatch_leaves_even_when_its_queue_is_full() -> None:
    lost = Candidate(next(_ids), "a", "sleep", 0, T0, holds_slot=True, queue="short")
    assert choose([lost, *queued("a", 2)], {}, NONE, 100, {"short": 0, "": 0}) == [lost]


def test_when_one_slot_frees_the_tenant_holding_fewer_takes_it() -> None:
    """A queue cap of one free slot at a time: the tenant with runs in flight does not win every turn,
    though its queued rows are older."""
    big, small = queued("a", 50), queued("b", 3, after=1_000)
    chosen = choose([*big, *small], {("a", "sleep"): 99}, NONE, 100, {"": 1})
    assert [c.tenant_id for c in chosen] == ["b"]


def test_queue_room_is_the_cap_less_what_is_in_flight() -> None:
    assert queue_room({"short": 7, "long": 12}, ["short", "long", "new"], 10) == {
        "short": 3,
        "long": 0,
        "new": 10,
    }
    assert queue_room({"short": 7}, ["short"], None) == {} == queue_room({}, ["short"], 0)


@settings(max_examples=200, deadline=None)
@given(candidates, running_maps, st.dictionaries(st.sampled_from(["", "q"]), st.integers(0, 5)))
def test_no_choice_takes_a_queue_past_its_cap(
    rows: list[Candidate], running: dict[tuple[str, str], int], room: dict[str, int]
) -> None:
    chosen = choose(rows, running, NONE, 50, room)
    for queue, free in room.items():
        assert sum(1 for c in chosen if c.queue == queue and not c.holds_slot) <= free
