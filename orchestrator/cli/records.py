"""`orchestrator records load FILE`: upload records from JSON lines or CSV, in batches, with a progress bar.

Every line is checked against the record schema before anything is sent, so a bad line is reported with
its line number and nothing is half-loaded because of it. The API upserts by `external_id`, so loading
the same file again rewrites the records instead of duplicating them.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from orchestrator.cli.api_client import Api, resolve_target
from orchestrator.cli.common import CliError
from orchestrator.cli.runs import DEFAULT_DATA_DIR, ApiKey, ApiUrl, RunsDataDir
from schemas.records import MAX_RECORDS_PER_CALL, RecordIn

records_app = typer.Typer(help="Load a tenant's text records over the HTTP API.", no_args_is_help=True)

_COLUMNS = set(RecordIn.model_fields)


def _from_csv_row(row: dict[str, Any]) -> dict[str, Any]:
    """A CSV row as a record: known columns as fields, `metadata` as JSON, any other column into metadata."""
    record: dict[str, Any] = {k: v for k, v in row.items() if k in _COLUMNS and k != "metadata" and v != ""}
    metadata = json.loads(row["metadata"]) if row.get("metadata") else {}
    extra = {k: v for k, v in row.items() if k not in _COLUMNS and k is not None}
    record["metadata"] = {**extra, **metadata}
    return record


def _raw_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, the record as parsed, or the JSON line's text to parse)."""
    with path.open(newline="", encoding="utf-8") as handle:
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(handle)
            for row in reader:
                try:
                    yield reader.line_num, _from_csv_row(row)
                except json.JSONDecodeError:
                    raise CliError(f"{path}:{reader.line_num}: metadata is not a JSON object") from None
            return
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def _record(path: Path, number: int, raw: Any) -> RecordIn:
    try:
        return RecordIn.model_validate(json.loads(raw) if isinstance(raw, str) else raw)
    except json.JSONDecodeError as exc:
        raise CliError(f"{path}:{number}: not a JSON object ({exc.msg})") from None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        raise CliError(f"{path}:{number}: {where}: {first['msg']}") from None


def read_records(path: Path) -> list[RecordIn]:
    """Every record of the file, or CliError naming the first bad line."""
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    try:
        found = [_record(path, number, raw) for number, raw in _raw_rows(path)]
    except UnicodeDecodeError:
        raise CliError(f"{path}: not UTF-8 text") from None
    except csv.Error as exc:
        raise CliError(f"{path}: not valid CSV ({exc})") from None
    if not found:
        raise CliError(f"{path}: no records in the file")
    return found


@records_app.command("load")
def records_load(
    file: Annotated[Path, typer.Argument(help="JSON lines (one record a line) or CSV with a header row.")],
    batch_size: Annotated[int, typer.Option(min=1, max=MAX_RECORDS_PER_CALL)] = 5000,
    url: ApiUrl = None,
    key: ApiKey = None,
    data_dir: RunsDataDir = DEFAULT_DATA_DIR,
) -> None:
    """Upsert the file's records by external_id; prints the counts inserted and updated."""
    found = read_records(file)
    inserted = updated = 0
    columns = (TextColumn("loading"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with (
        Api(resolve_target(url, key, data_dir), timeout=120.0) as api,
        Progress(*columns, console=Console(stderr=True)) as progress,
    ):
        task = progress.add_task("records", total=len(found))
        for start in range(0, len(found), batch_size):
            batch = found[start : start + batch_size]
            body = {"records": [r.model_dump(mode="json") for r in batch]}
            counts = api.call("POST", "/v1/records", json=body)
            inserted += int(counts["inserted"])
            updated += int(counts["updated"])
            progress.advance(task, len(batch))
    typer.echo(f"{inserted} inserted, {updated} updated")
