"""Benchmarks, run by hand, never by `make test` or pytest's default collection.

Each one is a single command that prints a table and writes `tests/benchmarks/results/<name>.json`:

    .venv/bin/python -m tests.benchmarks.bench_e2e    [--n N] [--reps R]
    .venv/bin/python -m tests.benchmarks.bench_api    [--n N] [--reps R]
    .venv/bin/python -m tests.benchmarks.bench_append [--n N] [--reps R] [--seconds S]

The machines are shared and noisy, so every comparison is a ratio of contenders measured side by side in
one run, their repetitions interleaved (A, B, A, B...), reported as a median with its spread.
"""
