"""`orchestrator runs ...`: a small HTTP client of the canonical API, for people and scripts."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

runs_app = typer.Typer(help="Submit and follow runs over the HTTP API.", no_args_is_help=True)
err = Console(stderr=True)
DEFAULT_URL = "http://127.0.0.1:8000"

ApiUrl = Annotated[str, typer.Option("--url", envvar="ORCH_API_URL", help="API base URL.")]
ApiKey = Annotated[str, typer.Option("--key", envvar="ORCH_API_KEY", help="API key (or ORCH_API_KEY).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]


def _client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30.0)


def _checked(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        err.print(f"[red]HTTP {response.status_code}[/red] {response.text}")
        raise typer.Exit(1)
    return response.json()


def _table(runs: list[dict[str, Any]]) -> None:
    table = Table("id", "kind", "status", "attempt", "progress", "created", "error")
    for r in runs:
        progress = f"{r['progress']['done']}/{r['progress']['total'] or '?'}"
        table.add_row(
            r["id"], r["kind"], r["status"], str(r["attempt"]), progress, r["created_at"], r["error"] or ""
        )
    Console().print(table)


def _show(data: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        _table(data if isinstance(data, list) else [data])


@runs_app.command("submit")
def runs_submit(
    kind: Annotated[str, typer.Argument(help="Job kind, e.g. sleep.")],
    url: ApiUrl = DEFAULT_URL,
    key: ApiKey = "",
    params: Annotated[str, typer.Option(help="Parameters as JSON, e.g. '{\"duration\": 1}'.")] = "{}",
    parent: Annotated[str | None, typer.Option(help="Parent run id.")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Retries with the same key return the same run.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Submit a run."""
    try:
        parsed = json.loads(params)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--params") from None
    body: dict[str, Any] = {"kind": kind, "params": parsed}
    if parent:
        body["parent_run_id"] = parent
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    with _client(url, key) as client:
        _show(_checked(client.post("/v1/runs", json=body, headers=headers)), as_json)


@runs_app.command("list")
def runs_list(
    url: ApiUrl = DEFAULT_URL,
    key: ApiKey = "",
    status: Annotated[str | None, typer.Option(help="pending|running|succeeded|failed|canceled")] = None,
    kind: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of a previous page.")] = None,
    as_json: AsJson = False,
) -> None:
    """List runs, newest first."""
    query = {k: v for k, v in {"status": status, "kind": kind, "limit": limit, "cursor": cursor}.items() if v}
    with _client(url, key) as client:
        page = _checked(client.get("/v1/runs", params=query))
    if as_json:
        print(json.dumps(page, indent=2))
        return
    _table(page["data"])
    if page["next_cursor"]:
        err.print(f"more: --cursor {page['next_cursor']}")


@runs_app.command("get")
def runs_get(run_id: str, url: ApiUrl = DEFAULT_URL, key: ApiKey = "", as_json: AsJson = False) -> None:
    """Show one run."""
    with _client(url, key) as client:
        _show(_checked(client.get(f"/v1/runs/{run_id}")), as_json)


@runs_app.command("cancel")
def runs_cancel(run_id: str, url: ApiUrl = DEFAULT_URL, key: ApiKey = "", as_json: AsJson = False) -> None:
    """Cancel a run (pending: at once; running: at its next checkpoint)."""
    with _client(url, key) as client:
        _show(_checked(client.post(f"/v1/runs/{run_id}/cancel")), as_json)


@runs_app.command("watch")
def runs_watch(
    run_id: str,
    url: ApiUrl = DEFAULT_URL,
    key: ApiKey = "",
    as_json: AsJson = False,
) -> None:
    """Follow the run's events live (SSE) until it ends; exit 0 if it succeeded, else 1.

    A dropped connection is resumed from the last event seen (Last-Event-ID), so nothing is missed."""
    last_id: str | None = None
    last_type = ""
    with _client(url, key) as client:
        while last_type not in TERMINAL_TYPES:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                with client.stream(
                    "GET", f"/v1/runs/{run_id}/stream", headers=headers, timeout=None
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        _checked(response)
                    for event_id, event in _sse_events(response.iter_lines()):
                        last_id, last_type = event_id, event["type"]
                        _print_event(event, as_json)
            except httpx.TransportError:
                err.print("[yellow]connection lost; resuming[/yellow]")
                time.sleep(1.0)
    raise typer.Exit(0 if last_type == "RunSucceeded" else 1)


TERMINAL_TYPES = frozenset({"RunSucceeded", "RunFailed", "RunCanceled"})


def _sse_events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(id, data) of each Server-Sent Event; comments (heartbeats) are skipped."""
    event_id, data = "", ""
    for line in lines:
        if not line:
            if data:
                yield event_id, json.loads(data)
            event_id, data = "", ""
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()


def _print_event(event: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(event), flush=True)
        return
    line = f"{event['recordedAt']}  v{event['version']:<3} {event['type']}"
    print(f"{line}  {json.dumps(event['data'])}", flush=True)
