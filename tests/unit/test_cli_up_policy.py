"""`orchestrator up`'s restart policy and the URL it records, without starting anything."""

from __future__ import annotations

import pytest

from orchestrator.processes.supervisor import RestartPolicy, api_url


def test_a_role_dying_right_away_is_restarted_ever_later_then_given_up() -> None:
    policy = RestartPolicy(quick_seconds=10.0, max_quick_deaths=5)
    assert [policy.delay_after(0.3) for _ in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert policy.delay_after(0.3) is None


def test_a_role_that_ran_a_while_is_restarted_at_once_and_its_count_forgotten() -> None:
    policy = RestartPolicy(quick_seconds=10.0, max_quick_deaths=3)
    assert policy.delay_after(1.0) == 1.0
    assert policy.delay_after(1.0) == 2.0
    assert policy.delay_after(600.0) == 0.0
    assert policy.delay_after(1.0) == 1.0, "the count of quick deaths starts again"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("0.0.0.0", "http://127.0.0.1:8000"),
        ("::", "http://[::1]:8000"),
        ("::1", "http://[::1]:8000"),
        ("localhost", "http://localhost:8000"),
    ],
)
def test_the_recorded_url_is_reachable_from_this_machine(host: str, url: str) -> None:
    assert api_url(host, 8000) == url
