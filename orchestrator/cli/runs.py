"""`orchestrator runs ...`: a small HTTP client of the canonical API, for people and scripts.

Which API and which key: --url/--key, else ORCH_API_URL/ORCH_API_KEY, else what `orchestrator up`
recorded in its data folder (`api-url`, `dev-api-key`). Every failure is one line on stderr (exit 2)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.cli.api_client import Api, resolve_target
from orchestrator.cli.common import CliError, say
from orchestrator.cli.output import print_json, print_table
from orchestrator.cli.watch import Backoff, event_line, follow
from schemas.events import RunSucceeded

runs_app = typer.Typer(
    help="Submit and follow runs over the HTTP API. Without --url/--key (or ORCH_API_URL/ORCH_API_KEY) "
    "they talk to the `orchestrator up` of --data-dir, with its development key.",
    no_args_is_help=True,
)

ApiUrl = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="ORCH_API_URL",
        help="API base URL. Default: the URL `orchestrator up` recorded in DATA_DIR/api-url, "
        "else http://127.0.0.1:8000.",
        show_default=False,
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar="ORCH_API_KEY",
        help="API key. Default: the development key in DATA_DIR/dev-api-key.",
        show_default=False,
    ),
]
RunsDataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar="ORCH_DATA_DIR",
        help="Data folder of a local `orchestrator up`, read only when --url or --key is missing.",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]
DEFAULT_DATA_DIR = Path(".orchestrator")


def _api(url: str | None, key: str | None, data_dir: Path) -> Api:
    return Api(resolve_target(url, key, data_dir))


def _rows(runs: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for r in runs:
        progress = r.get("progress") or {}
        created = str(r.get("created_at", ""))[:19].replace("T", " ")
        rows.append(
            [
                str(r["id"]),
                str(r.get("kind", "")),
                str(r.get("status", "")),
                str(r.get("attempt", "")),
                f"{progress.get('done', 0)}/{progress.get('total') or '?'}",
                created,
                str(r.get("error") or ""),
            ]
        )
    return rows


def _show(run: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(run)
    else:
        _table([run])


def _table(runs: list[dict[str, Any]]) -> None:
    columns = ("id", "kind", "status", "attempt", "progress", "created (UTC)", "error")
    print_table(columns, _rows(runs), wrap=("error",))


@runs_app.command("submit")
def runs_submit(
    kind: Annotated[str, typer.Argument(help="Job kind, e.g. sleep.")],
    params: Annotated[str, typer.Option(help="Parameters as JSON, e.g. '{\"duration\": 1}'.")] = "{}",
    parent: Annotated[str | None, typer.Option(help="Parent run id.")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Retries with the same key return the same run.")
    ] = None,
    url: ApiUrl = None,
    key: ApiKey = None,
    data_dir: RunsDataDir = DEFAULT_DATA_DIR,
    as_json: AsJson = False,
) -> None:
    """Submit a run."""
    try:
        parsed = json.loads(params)
    except json.JSONDecodeError as exc:
        raise CliError(f"--params is not JSON ({exc}); write it like '{{\"duration\": 1}}'") from None
    if not isinstance(parsed, dict):
        raise CliError("--params must be a JSON object, like '{\"duration\": 1}'")
    body: dict[str, Any] = {"kind": kind, "params": parsed}
    if parent:
        body["parent_run_id"] = parent
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    with _api(url, key, data_dir) as api:
        run = api.call("POST", "/v1/runs", json=body, headers=headers)
    _show(run, as_json)


@runs_app.command("list")
def runs_list(
    status: Annotated[str | None, typer.Option(help="pending|running|succeeded|failed|canceled")] = None,
    kind: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of a previous page.")] = None,
    url: ApiUrl = None,
    key: ApiKey = None,
    data_dir: RunsDataDir = DEFAULT_DATA_DIR,
    as_json: AsJson = False,
) -> None:
    """List runs, newest first."""
    query = {k: v for k, v in {"status": status, "kind": kind, "limit": limit, "cursor": cursor}.items() if v}
    with _api(url, key, data_dir) as api:
        page = api.call("GET", "/v1/runs", params=query)
    if as_json:
        print_json(page)
        return
    _table(page["data"])
    if page.get("next_cursor"):
        say(f"more: --cursor {page['next_cursor']}")


@runs_app.command("get")
def runs_get(
    run_id: str,
    url: ApiUrl = None,
    key: ApiKey = None,
    data_dir: RunsDataDir = DEFAULT_DATA_DIR,
    as_json: AsJson = False,
) -> None:
    """Show one run."""
    with _api(url, key, data_dir) as api:
        run = api.call("GET", f"/v1/runs/{run_id}", what=f"run {run_id}")
    _show(run, as_json)


@runs_app.command("cancel")
def runs_cancel(
    run_id: Annotated[
        str | None, typer.Argument(help="One run; without it, every live run the filters match.")
    ] = None,
    status: Annotated[str | None, typer.Option(help="Bulk: pending|running.")] = None,
    kind: Annotated[str | None, typer.Option(help="Bulk: runs of this kind.")] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Bulk with no filter: every live run.")] = False,
    url: ApiUrl = None,
    key: ApiKey = None,
    data_dir: RunsDataDir = DEFAULT_DATA_DIR,
    as_json: AsJson = False,
) -> None:
    """Cancel a run (pending: at once; running: at its next checkpoint), or with --status/--kind/--all every
    live run that matches, 1,000 a request until none is left, printing each run's outcome."""
    filters = {k: v for k, v in {"status": status, "kind": kind}.items() if v}
    with _api(url, key, data_dir) as api:
        if run_id is not None:
            if filters or all_runs:
                raise CliError("give a run id or bulk filters (--status, --kind, --all), not both")
            _show(api.call("POST", f"/v1/runs/{run_id}/cancel", what=f"run {run_id}"), as_json)
            return
        if not filters and not all_runs:
            raise CliError("name a run id, or filters (--status, --kind), or --all to cancel every live run")
        outcomes = _cancel_all(api, filters)
    if as_json:
        print_json({"data": outcomes})
        return
    print_table(("id", "outcome"), [[o["run_id"], o["outcome"]] for o in outcomes])
    say(
        f"{len(outcomes)} runs: "
        + ", ".join(f"{n} {o}" for o, n in sorted(Counter(x["outcome"] for x in outcomes).items()))
    )


# Outcomes after which the run no longer matches a bulk cancel: a call made of none of them makes no progress.
_SETTLED = frozenset({"canceled", "cancel_requested", "already_canceled", "already_finished"})


def _cancel_all(api: Api, filters: dict[str, str]) -> list[dict[str, Any]]:
    outcomes: list[dict[str, Any]] = []
    while True:
        answer = api.call("POST", "/v1/runs:cancel", json=filters)
        outcomes += answer["data"]
        if not answer["more"] or not any(o["outcome"] in _SETTLED for o in answer["data"]):
            return outcomes


@runs_app.command("retry")
def runs_retry(
    run_id: str,
    url: ApiUrl = None,
    key: ApiKey = None,
    data_dir: RunsDataDir = DEFAULT_DATA_DIR,
    as_json: AsJson = False,
) -> None:
    """Run a failed or canceled run again, as a new run linked to it (its `retry_of`); prints the new run."""
    with _api(url, key, data_dir) as api:
        run = api.call("POST", f"/v1/runs/{run_id}:retry", what=f"run {run_id}")
    _show(run, as_json)


@runs_app.command("watch")
def runs_watch(
    run_id: str,
    url: ApiUrl = None,
    key: ApiKey = None,
    data_dir: RunsDataDir = DEFAULT_DATA_DIR,
    as_json: AsJson = False,
) -> None:
    """Follow the run's events live (SSE) until it ends; exit 0 if it succeeded, 1 if it did not.

    A dropped connection is resumed from the last event seen (Last-Event-ID), so nothing is missed;
    after 5 failed reconnects in a row (about 15 s) it gives up with exit 2."""

    def on_event(event: dict[str, Any]) -> None:
        print(json.dumps(event) if as_json else event_line(event), flush=True)

    with _api(url, key, data_dir) as api:
        last_type = follow(api, run_id, on_event, Backoff())
    raise typer.Exit(0 if last_type == RunSucceeded.type else 1)
