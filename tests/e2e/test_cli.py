"""The CLI as a person meets it when something is wrong: the command runs as a process, talks to a
closed port or to a small real HTTP server of the test's own, and must answer in one line, no traceback.
None of these needs a database; the one that waits out the reconnect budget of `runs watch` is slow."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.services import free_port

Handler = Callable[[BaseHTTPRequestHandler], None]


def cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`orchestrator ARGS` as a user runs it: no ORCH_ settings, in a folder of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert result.returncode not in (0, None), result
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


class FakeApi:
    """A real HTTP server answering with whatever the test scripts, one handler per request in turn."""

    def __init__(self, *handlers: Handler) -> None:
        self.handlers = list(handlers)
        self.requests: list[dict[str, str]] = []
        api = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
                api.handlers.pop(0)(self)

            do_POST = do_GET

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


StartApi = Callable[..., FakeApi]


@pytest.fixture()
def fake_api() -> Iterator[StartApi]:
    servers: list[FakeApi] = []

    def start(*handlers: Handler) -> FakeApi:
        servers.append(FakeApi(*handlers))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def answer(status: int, body: object, content_type: str = "application/json") -> Handler:
    def handle(request: BaseHTTPRequestHandler) -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        request.send_response(status)
        request.send_header("content-type", content_type)
        request.send_header("content-length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    return handle


def sse(*events: tuple[int, dict[str, object]]) -> Handler:
    """A stream that sends these events and then ends, like a server that goes away mid-run."""

    def handle(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("content-type", "text/event-stream")
        request.send_header("connection", "close")
        request.end_headers()
        request.wfile.write(b": heartbeat\n\n")
        for position, event in events:
            request.wfile.write(
                f"id: {position}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
            )
        request.wfile.flush()
        request.close_connection = True

    return handle


def closed_port() -> int:
    return free_port()  # bound and released at once: nothing listens there


def test_runs_list_against_a_closed_port_is_one_line(tmp_path: Path) -> None:
    port = closed_port()
    result = cli("runs", "list", "--url", f"http://127.0.0.1:{port}", "--key", "orch_x", cwd=tmp_path)
    assert_one_line_error(result, f"127.0.0.1:{port}", "cannot reach")


def test_runs_list_without_any_key_says_where_one_comes_from(tmp_path: Path) -> None:
    result = cli("runs", "list", cwd=tmp_path)
    assert_one_line_error(result, "no API key", "--key", "ORCH_API_KEY", str(tmp_path / ".orchestrator"))


def test_runs_use_the_url_and_key_up_recorded_in_the_data_folder(tmp_path: Path, fake_api: StartApi) -> None:
    api = fake_api(answer(200, {"data": [], "next_cursor": None}))
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "api-url").write_text(api.url + "\n")
    (folder / "dev-api-key").write_text("orch_devkey\n")
    result = cli("runs", "list", "--json", "--data-dir", "data", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"data": [], "next_cursor": None}
    assert api.requests[0]["authorization"] == "Bearer orch_devkey"
    assert f"data folder: {folder}" in result.stderr

    api.close()
    stale = cli("runs", "list", "--data-dir", "data", cwd=tmp_path)
    assert_one_line_error(stale, api.url, str(folder / "api-url"))


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            answer(401, {"detail": "unauthenticated", "error_code": "unauthenticated"}),
            ["refused the key", "401"],
        ),
        (answer(404, {"detail": "not found", "error_code": "not_found"}), ["run 42 not found"]),
        (
            answer(422, {"detail": [{"loc": ["path", "run_id"], "msg": "Input should be a valid UUID"}]}),
            ["422", "path.run_id: Input should be a valid UUID"],
        ),
        (answer(503, {"detail": "database unavailable", "error_code": "service_unavailable"}), ["503"]),
        (answer(200, "<html>hello</html>", "text/html"), ["not JSON"]),
    ],
    ids=["401", "404", "422", "503", "not-json"],
)
def test_error_answers_are_one_line(
    tmp_path: Path, fake_api: StartApi, reply: Handler, expected: list[str]
) -> None:
    api = fake_api(reply)
    result = cli("runs", "get", "42", "--url", api.url, "--key", "orch_x", cwd=tmp_path)
    assert_one_line_error(result, *expected)


def test_watch_resumes_after_a_drop_from_the_last_event(tmp_path: Path, fake_api: StartApi) -> None:
    created = {"type": "RunCreated", "version": 1, "recordedAt": "2026-01-01T00:00:00+00:00", "data": {}}
    done = {"type": "RunSucceeded", "version": 2, "recorded_at": "2026-01-01T00:00:01+00:00", "data": {}}
    api = fake_api(sse((11, created)), sse((12, done)))
    result = cli("runs", "watch", "r1", "--url", api.url, "--key", "orch_x", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "last-event-id" not in api.requests[0]
    assert api.requests[1]["last-event-id"] == "11"
    lines = result.stdout.splitlines()
    assert lines[0].startswith("2026-01-01T00:00:00+00:00") and "RunCreated" in lines[0]
    assert lines[1].startswith("2026-01-01T00:00:01+00:00") and "RunSucceeded" in lines[1]


def test_watch_of_a_run_that_failed_exits_1(tmp_path: Path, fake_api: StartApi) -> None:
    failed = {"type": "RunFailed", "version": 2, "recorded_at": "2026-01-01T00:00:01+00:00", "data": {}}
    api = fake_api(sse((5, failed)))
    result = cli("runs", "watch", "r1", "--url", api.url, "--key", "orch_x", "--json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["type"] == "RunFailed"


@pytest.mark.slow
def test_watch_gives_up_after_five_failed_reconnects(tmp_path: Path, fake_api: StartApi) -> None:
    created = {"type": "RunCreated", "version": 1, "recorded_at": "2026-01-01T00:00:00+00:00", "data": {}}
    api = fake_api(sse((1, created)), *[answer(503, {"detail": "restarting"})] * 10)
    started = time.monotonic()
    result = cli("runs", "watch", "r1", "--url", api.url, "--key", "orch_x", cwd=tmp_path, timeout=90)
    elapsed = time.monotonic() - started
    assert_one_line_error(result, "gave up", "5 failed reconnects")
    assert len(api.requests) == 1 + 5, "the first stream, then five reconnects"
    assert elapsed < 60, elapsed


def test_up_on_a_taken_port_exits_at_once_naming_the_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = cli("up", "--data-dir", str(tmp_path / "d"), "--port", str(port), cwd=tmp_path, timeout=60)
        elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert elapsed < 15, f"took {elapsed:.1f}s"
    assert str(port) in result.stderr and "Traceback" not in result.stderr
    assert "orch_" not in result.stdout + result.stderr, "no key is printed for a system that cannot start"
    assert not (tmp_path / "d" / "postgres").exists(), "nothing was started"
