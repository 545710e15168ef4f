"""The `runs` client's pieces that need no API: where the URL and key come from, one-line errors,
tables that keep ids whole, the SSE parser and the reconnect budget of `runs watch`."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.cli.api_client import DEFAULT_URL, Api, resolve_target
from orchestrator.cli.common import EXIT_CANNOT, CliError
from orchestrator.cli.output import print_table
from orchestrator.cli.watch import Backoff, event_line, sse_events


def test_flags_win_over_the_data_folder(tmp_path: Path) -> None:
    (tmp_path / "api-url").write_text("http://127.0.0.1:9999\n")
    (tmp_path / "dev-api-key").write_text("orch_from_file\n")
    target = resolve_target("http://example.test:1/", "orch_flag", tmp_path)
    assert (target.url, target.key) == ("http://example.test:1", "orch_flag")


def test_the_data_folder_gives_the_url_and_key_up_recorded(tmp_path: Path) -> None:
    (tmp_path / "api-url").write_text("http://127.0.0.1:9999\n")
    (tmp_path / "dev-api-key").write_text("orch_from_file\n")
    target = resolve_target(None, None, tmp_path)
    assert (target.url, target.key) == ("http://127.0.0.1:9999", "orch_from_file")
    assert str(tmp_path / "api-url") in target.url_hint
    assert target.key_from == str(tmp_path / "dev-api-key")


def test_without_a_recorded_url_the_default_is_used_and_named(tmp_path: Path) -> None:
    target = resolve_target(None, "orch_k", tmp_path)
    assert target.url == DEFAULT_URL
    assert str(tmp_path) in target.url_hint


def test_no_key_anywhere_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CliError) as caught:
        resolve_target("http://127.0.0.1:1", None, tmp_path)
    message = str(caught.value)
    assert "--key" in message and "ORCH_API_KEY" in message and str(tmp_path) in message
    assert "\n" not in message and caught.value.exit_code == EXIT_CANNOT


def test_a_url_without_scheme_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="http://"):
        resolve_target("localhost:8000", "k", tmp_path)


@pytest.mark.parametrize(
    ("params", "expected"), [("{bad", "--params is not JSON"), ("[1, 2]", "JSON object")]
)
def test_bad_params_are_one_line_on_stderr(params: str, expected: str) -> None:
    result = CliRunner().invoke(
        app, ["runs", "submit", "sleep", "--params", params, "--key", "k", "--url", "http://127.0.0.1:1"]
    )
    assert result.exit_code == EXIT_CANNOT
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
    assert result.stdout == ""


def test_cli_error_messages_are_flattened_to_one_line() -> None:
    assert str(CliError("first\n  second\tthird")) == "first second third"


def test_tables_keep_ids_and_long_cells_whole_on_a_narrow_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    ids = [str(uuid.uuid4()) for _ in range(3)]
    prefix = "orch_AbCdEfGh1234567890"
    rows = [[i, "succeeded", prefix, "a long error message " * 5] for i in ids]
    print_table(("id", "status", "prefix", "error"), rows, wrap=("error",))
    out = capsys.readouterr().out
    for run_id in ids:
        assert run_id in out
    assert prefix in out and "…" not in out


def test_sse_parser_joins_fields_and_skips_heartbeats() -> None:
    lines = [
        ": heartbeat",
        "id: 7",
        "event: RunCreated",
        'data: {"type": "RunCreated",',
        'data: "version": 1}',
        "",
        ": heartbeat",
        "",
        "id: 9",
        'data: {"type": "RunSucceeded", "version": 2}',
        "",
    ]
    assert list(sse_events(iter(lines))) == [
        ("7", {"type": "RunCreated", "version": 1}),
        ("9", {"type": "RunSucceeded", "version": 2}),
    ]


def test_an_event_that_is_not_json_is_a_cli_error() -> None:
    with pytest.raises(CliError, match="not JSON"):
        list(sse_events(iter(["id: 1", "data: {oops", ""])))


@pytest.mark.parametrize("key", ["recordedAt", "recorded_at"])
def test_event_lines_accept_both_spellings_of_the_timestamp(key: str) -> None:
    event = {key: "2026-01-02T03:04:05+00:00", "version": 3, "type": "RunStarted", "data": {"attempt": 1}}
    line = event_line(event)
    assert line.startswith("2026-01-02T03:04:05+00:00")
    assert "RunStarted" in line and json.dumps({"attempt": 1}) in line


def test_watch_gives_up_after_the_limit_and_any_event_resets_the_count() -> None:
    backoff = Backoff(limit=5, base=0.5)
    delays = [backoff.next_delay() for _ in range(5)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert backoff.next_delay() is None
    backoff.succeeded()
    assert backoff.next_delay() == 0.5


def test_a_timeout_and_a_refused_connection_say_what_to_check(tmp_path: Path) -> None:
    target = resolve_target("http://127.0.0.1:1", "orch_k", tmp_path)
    with Api(target, timeout=7) as api:
        slow = api.unreachable(httpx.ReadTimeout("timed out"))
        refused = api.unreachable(httpx.ConnectError("[Errno 111] Connection refused"))
    assert "did not answer within 7s" in str(slow) and "http://127.0.0.1:1" in str(slow)
    assert "Connection refused" in str(refused) and "--url" in str(refused)
