"""A long run's writes: what one more progress report costs once its stream holds thousands of events.

    .venv/bin/python -m tests.benchmarks.bench_fold [--n 10000] [--reports 100] [--reps 3]

Each rep starts two runs, fills each stream with `--n` progress events (appended straight to the log, in
chunks), then has each make `--reports` more (100) through RunService.execute, in turn: `whole` reads and
folds the whole stream for every report (what an API command does, and what every write did before
orchestrator.folded_states), `tail` folds from the state the service committed last and reads only the
events since (what a worker's job context does; its first report still folds the whole stream). The table
shows milliseconds per report and the ratio of the two measured in the same rep.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from orchestrator.domain.commands import ReportProgress, StartAttempt
from orchestrator.services import RunService, SubmitRequest
from orchestrator.store.events import append
from schemas.events import ProgressReported
from tests.benchmarks.common import Samples, fmt, interleave, parse_args, print_table, summarize, write_json
from tests.benchmarks.system import System, running, servers

CHUNK = 1000  # events per append while filling


def fold_trial(system: System, n: int, reports: int, whole_stream: bool) -> Any:
    def trial(_rep: int) -> dict[str, float]:
        service = RunService(system.engine, system.settings)
        tenant = f"fold-{uuid.uuid4().hex[:8]}"
        run_id = service.submit(SubmitRequest(tenant_id=tenant, kind="sleep")).run_id
        version = service.execute(
            run_id, StartAttempt(attempt=1, worker="bench"), actor="bench"
        ).state.version
        with system.engine.begin() as conn:
            for start in range(0, n, CHUNK):
                filler = [
                    ProgressReported(attempt=1, done=d, total=n) for d in range(start, min(n, start + CHUNK))
                ]
                version = append(conn, run_id, tenant, filler, version)[-1].version
        started = time.perf_counter()
        for done in range(reports):
            command = ReportProgress(1, n + done, n + reports)
            service.execute(run_id, command, actor="bench", whole_stream=whole_stream)
        elapsed = time.perf_counter() - started
        return {"reports_per_s": reports / elapsed, "ms_per_report": elapsed * 1000 / reports}

    return trial


def report(samples: Samples, n: int, reports: int) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    rows = []
    for name in ("whole", "tail"):
        per_s = summary[f"{name}_reports_per_s"] = summarize(samples, name, "reports_per_s")
        ms = summary[f"{name}_ms_per_report"] = summarize(samples, name, "ms_per_report")
        rows.append([name, fmt(per_s["median"]), fmt(ms["median"], " ms", 2), fmt(ms["spread_pct"], "%")])
    ratio = summary["whole_over_tail"] = samples.paired_ratio("ms_per_report", "whole", "tail")
    notes = (
        f"one run per contender per rep, its stream filled with {n:,} events, then {reports} reports "
        f"timed; reps interleaved; whole/tail paired per rep: {fmt(ratio, 'x', 1)}"
    )
    print_table(
        "progress reports on one long run", ["fold", "reports/s", "per report", "spread"], rows, notes
    )
    return summary


def main() -> None:
    def extra(parser: Any) -> None:
        parser.add_argument("--reports", type=int, default=100, help="reports timed per run (100)")

    args = parse_args("progress reports on a long run: whole-stream fold against the tail", 10_000, extra)
    with servers() as found, running(found, ()) as system:
        trials = [
            ("whole", fold_trial(system, args.n, args.reports, whole_stream=True)),
            ("tail", fold_trial(system, args.n, args.reports, whole_stream=False)),
        ]
        samples = interleave(args.reps, trials)
    write_json("fold", args, samples, report(samples, args.n, args.reports))


if __name__ == "__main__":
    main()
