"""What every benchmark shares: its arguments, interleaved repetitions, medians and spreads, the rich
table and the JSON file."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"
# Not a terminal (a log, a pipe): wide enough that the tables keep one line per row.
console = Console(width=None if sys.stdout.isatty() else 120)

# One repetition of one contender: its rep number in, its measured values out ({"jobs_per_s": ...}).
Trial = Callable[[int], dict[str, float]]


def parse_args(
    description: str,
    default_n: int | None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """--n (jobs or operations per rep; None: the benchmark's own limit) and --reps, plus `extra`."""
    parser = argparse.ArgumentParser(description=description)
    shown = "no cap" if default_n is None else str(default_n)
    parser.add_argument("--n", type=int, default=default_n, help=f"jobs or operations per rep ({shown})")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of every contender (3)")
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    if (args.n is not None and args.n < 1) or args.reps < 1:
        parser.error("--n and --reps must be at least 1")
    return args


@dataclass
class Sample:
    contender: str
    rep: int
    values: dict[str, float]


@dataclass
class Samples:
    """Every measurement of a run, in the order it was taken."""

    items: list[Sample] = field(default_factory=list)

    def of(self, contender: str, metric: str) -> list[float]:
        return [s.values[metric] for s in self.items if s.contender == contender and metric in s.values]

    def paired_ratio(self, metric: str, ours: str, other: str) -> float | None:
        """The median over reps of ours/other measured in the same rep: the load both saw was alike."""
        by_rep: dict[int, dict[str, float]] = {}
        for s in self.items:
            if metric in s.values:
                by_rep.setdefault(s.rep, {})[s.contender] = s.values[metric]
        ratios = [r[ours] / r[other] for r in by_rep.values() if ours in r and r.get(other)]
        return statistics.median(ratios) if ratios else None


def interleave(reps: int, trials: Sequence[tuple[str, Trial]]) -> Samples:
    """Run every contender once per rep, in turn (A, B, A, B...), so a slow spell of the machine hits
    all of them rather than one; a contender that fails is reported and dropped, the others go on."""
    samples = Samples()
    failed: set[str] = set()
    for rep in range(reps):
        for name, trial in trials:
            if name in failed:
                continue
            console.print(f"[dim]rep {rep + 1}/{reps}: {name}...[/dim]")
            try:
                values = trial(rep)
            except Exception as exc:  # a benchmark reports a broken contender instead of dying
                console.print(f"[red]{name} failed: {type(exc).__name__}: {exc}[/red]")
                failed.add(name)
                continue
            samples.items.append(Sample(name, rep, values))
            shown = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
            console.print(f"[dim]  {shown}[/dim]")
    return samples


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def spread(values: Sequence[float]) -> float | None:
    """(max - min) / median, in percent: how far apart the repetitions landed."""
    mid = median(values)
    if not values or not mid:
        return None
    return 100.0 * (max(values) - min(values)) / mid


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
    return ordered[index]


def summarize(samples: Samples, contender: str, metric: str) -> dict[str, Any]:
    values = samples.of(contender, metric)
    return {
        "median": median(values),
        "min": min(values, default=None),
        "max": max(values, default=None),
        "spread_pct": spread(values),
        "reps": len(values),
    }


def fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}{unit}"


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], notes: str = "") -> None:
    table = Table(title=title, caption=notes or None, caption_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    return out.stdout.strip() or None


def write_json(name: str, args: argparse.Namespace, samples: Samples, summary: dict[str, Any]) -> Path:
    """results/<name>.json: the arguments, the machine, every sample and the summary the table shows."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "finished_at": datetime.now(UTC).isoformat(),
        "args": vars(args),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
            "commit": _git_commit(),
        },
        "samples": [asdict(s) for s in samples.items],
        "summary": summary,
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    console.print(f"[dim]wrote {path}[/dim]")
    return path


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:
    """Poll `predicate` until it holds; a benchmark that cannot finish says what it waited for."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
