"""The dashboard in a real browser (Playwright driving the system's chromium) against an in-thread API
server and the session's role processes: a run submitted over the API appears and reaches `succeeded`
on the page without a reload, its detail shows its log, and a run is canceled from the page; the last
hour's charts fill as runs end, and a failed run is retried from the page."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from orchestrator.settings import Settings
from tests.conftest import System
from tests.services import serving, wait_until

browser_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")
expect = browser_api.expect
# Waits end as soon as the page shows the state; the bound only matters on a loaded machine.
expect.set_options(timeout=10_000)

# Debian's chromium: Playwright's own browser download is not used (nor reachable from CI).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="no chromium on this machine (apt-get install chromium)"
)


@pytest.fixture()
def served(settings: Settings, engine: Engine, system: System) -> Iterator[str]:
    with serving(settings, engine) as url:
        yield url


@dataclass
class Browsed:
    """A page and what it did: every URL it requested, and its errors (a CSP violation, a script error
    and an error answer all land in `problems`)."""

    page: Any
    requested: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@pytest.fixture()
def browsed() -> Iterator[Browsed]:
    with browser_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        seen = Browsed(browser.new_page())
        seen.page.on("request", lambda request: seen.requested.append(request.url))
        seen.page.on("console", lambda note: note.type == "error" and seen.problems.append(note.text))
        seen.page.on("pageerror", lambda error: seen.problems.append(str(error)))
        seen.page.on(
            "response",
            lambda answer: answer.status >= 400 and seen.problems.append(f"{answer.status} {answer.url}"),
        )
        try:
            yield seen
        finally:
            browser.close()


ACTIVITY = re.compile(r"/v1/runs:activity")


def _sleep_run(api: httpx.Client, duration: float, steps: int, fail: bool = False) -> str:
    params = {"duration": duration, "steps": steps, "fail": fail}
    response = api.post("/v1/runs", json={"kind": "sleep", "params": params})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_runs_go_live_on_the_page_and_one_is_canceled_from_it(
    served: str, browsed: Browsed, make_key: Callable[[str], str], tenant: str, tmp_path: Path
) -> None:
    key = make_key(tenant)
    api = httpx.Client(base_url=served, headers={"X-API-Key": key}, timeout=10)
    page = browsed.page
    page.goto(f"{served}/ui/")
    page.fill("#key-input", "orch_not-a-key")
    page.click("#key-use")
    expect(page.locator("#message")).to_contain_text("refused")
    expect(page.locator("#dashboard")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0  # a refused key is not kept
    page.fill("#key-input", key)
    page.click("#key-use")
    expect(page.locator('[data-count="total"] strong')).to_have_text("0")
    page.evaluate("window.notReloaded = true")

    quick = _sleep_run(api, duration=1, steps=2)
    row = page.locator(f'tr[data-run-id="{quick}"]')
    expect(row).to_be_visible(timeout=10_000)
    expect(row.locator("[data-status]")).to_have_attribute("data-status", "succeeded", timeout=15_000)
    expect(page.locator('[data-count="succeeded"] strong')).to_have_text("1", timeout=10_000)
    assert page.evaluate("window.notReloaded") is True

    row.locator("button").click()
    expect(page.locator("#detail-id")).to_have_text(quick)
    events = page.locator("#detail-events tr")
    expect(events.last).to_have_attribute("data-event-type", "RunSucceeded")
    expect(page.locator("#detail-fields")).to_contain_text("2 / 2")  # the progress it reported
    assert events.count() >= 5  # created, started, progress x2, succeeded: the whole log

    slow = _sleep_run(api, duration=30, steps=30)
    slow_row = page.locator(f'tr[data-run-id="{slow}"]')
    expect(slow_row).to_be_visible(timeout=10_000)
    slow_row.locator("button").click()
    expect(page.locator("#detail-id")).to_have_text(slow)
    page.click("#detail-cancel")
    shown = page.locator("#detail-fields [data-status]")
    expect(shown).to_have_attribute("data-status", "canceled", timeout=10_000)
    expect(slow_row.locator("[data-status]")).to_have_attribute("data-status", "canceled")
    screenshot = tmp_path / "dashboard.png"
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"dashboard screenshot: {screenshot}")

    assert api.get(f"/v1/runs/{slow}").json()["status"] == "canceled"
    assert not [url for url in browsed.requested if key in url], "the key must never be put into a URL"
    assert any(url.endswith("/stream") for url in browsed.requested), "runs are followed over SSE"
    # Only the refused key's 401s (an answer, and the console's line about it) are expected.
    assert not [p for p in browsed.problems if "401" not in p], browsed.problems


def test_charts_fill_as_runs_end_and_a_failed_run_is_retried_from_the_page(
    served: str, browsed: Browsed, make_key: Callable[[str], str], tenant: str, tmp_path: Path
) -> None:
    key = make_key(tenant)
    api = httpx.Client(base_url=served, headers={"X-API-Key": key}, timeout=10)
    page = browsed.page
    # The page's first read of the activity goes through; later ones are held until released below, so
    # what the charts gain meanwhile comes from the run's SSE stream alone.
    passed: list[Any] = []
    held: list[Any] = []
    open_gate = False

    def gate(route: Any) -> None:
        if passed and not open_gate:
            held.append(route)
        else:
            passed.append(route)
            route.continue_()

    page.route(ACTIVITY, gate)
    page.goto(f"{served}/ui/")
    page.fill("#key-input", key)
    page.click("#key-use")
    totals = page.locator("#activity-totals")
    expect(totals).to_have_attribute("data-as-of", re.compile(r"^\d{4}-"))  # the first read is in
    expect(totals).to_have_attribute("data-finished", "0")
    expect(page.locator("#chart-throughput rect")).to_have_count(0)
    expect(page.locator("#chart-wait circle")).to_have_count(0)
    first_read = totals.get_attribute("data-as-of")
    page.evaluate("window.notReloaded = true")

    # Long enough to be listed, and so followed, while it runs.
    good = _sleep_run(api, duration=5, steps=5)
    good_row = page.locator(f'tr[data-run-id="{good}"]')
    expect(good_row.locator("[data-status]")).to_have_attribute("data-status", "succeeded", timeout=15_000)
    expect(totals).to_have_attribute("data-finished", "1")
    expect(totals).to_have_attribute("data-started", "1")
    expect(page.locator('#chart-throughput rect[data-status="succeeded"]')).to_have_count(1)
    assert totals.get_attribute("data-as-of") == first_read, "no read got through: the stream did it"
    open_gate = True
    for route in held:
        route.continue_()

    bad = _sleep_run(api, duration=0, steps=1, fail=True)
    bad_row = page.locator(f'tr[data-run-id="{bad}"]')
    expect(bad_row.locator("[data-status]")).to_have_attribute("data-status", "failed", timeout=15_000)
    # Both ended within the hour: a bar for each status, and a queue wait for the minutes they started in.
    expect(totals).to_have_attribute("data-finished", "2", timeout=15_000)
    expect(totals).to_have_attribute("data-started", "2")
    expect(page.locator('#chart-throughput rect[data-status="succeeded"]').first).to_be_visible()
    expect(page.locator('#chart-throughput rect[data-status="failed"]').first).to_be_visible()
    expect(page.locator("#chart-wait circle").first).to_be_visible()

    good_row.locator("button").click()
    expect(page.locator("#detail-id")).to_have_text(good)
    expect(page.locator("#detail-retry")).to_be_hidden()  # a succeeded run is not retried

    bad_row.locator("button").click()
    expect(page.locator("#detail-id")).to_have_text(bad)
    page.click("#detail-retry")
    retry_link = page.locator("#detail-retried [data-retry-id]")
    expect(retry_link).to_have_count(1, timeout=10_000)
    again = retry_link.get_attribute("data-retry-id")
    assert again and again not in (good, bad)
    assert api.get(f"/v1/runs/{again}").json()["retry_of"] == bad
    # The old run's `retried_by` comes from the read model, which reaches the new run's RunCreated later.
    wait_until(
        lambda: api.get(f"/v1/runs/{bad}").json()["retried_by"] == [again],
        timeout=15,
        message="the failed run's read model naming its retry",
    )
    again_row = page.locator(f'tr[data-run-id="{again}"]')
    expect(again_row).to_be_visible(timeout=10_000)
    # The retry has the same params, so it fails too; the charts count it without a reload.
    expect(again_row.locator("[data-status]")).to_have_attribute("data-status", "failed", timeout=15_000)
    expect(totals).to_have_attribute("data-finished", "3", timeout=15_000)
    retry_link.click()
    expect(page.locator("#detail-id")).to_have_text(again)
    expect(page.locator("#detail-retried")).to_contain_text("retry of")
    assert page.evaluate("window.notReloaded") is True

    screenshot = tmp_path / "dashboard-charts.png"
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"dashboard screenshot: {screenshot}")
    assert not [url for url in browsed.requested if key in url], "the key must never be put into a URL"
    assert not browsed.problems, browsed.problems
