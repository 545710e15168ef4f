# `make up` runs the whole system on embedded PostgreSQL + Redis; `make test` runs the suite.
# Both create the project virtualenv (.venv) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST := $(BIN)/pytest

.PHONY: up test unit integration faults e2e lint typecheck check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

up: $(STAMP)
	$(BIN)/orchestrator up $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check orchestrator workers schemas tests
	$(BIN)/ruff format --check orchestrator workers schemas tests

typecheck: $(STAMP)
	$(BIN)/mypy

# Every tier: unit first, then integration + e2e alongside faults (tests/tiers.py says why that is
# safe). With ARGS, one plain pytest run instead. A tier that runs no test (exit code 5) fails.
test: $(STAMP) lint typecheck
	$(BIN)/python -m tests.tiers $(ARGS)

# The tiers on their own (tests/conftest.py gives every test one). The unit tier runs with services
# forbidden: a test in it that asks for PostgreSQL or Redis fails instead of starting an embedded one.
unit: $(STAMP)
	ORCH_TEST_NO_SERVICES=1 $(PYTEST) -m unit $(ARGS)

integration: $(STAMP)
	$(PYTEST) -m integration $(ARGS)

faults: $(STAMP)
	$(PYTEST) -m faults $(ARGS)

e2e: $(STAMP)
	$(PYTEST) -m e2e $(ARGS)

# The long schemathesis run over the whole OpenAPI document; `make test` runs a small share of it.
.PHONY: fuzz
fuzz: $(STAMP)
	ORCH_FUZZ_EXAMPLES=300 $(BIN)/pytest tests/contract/test_openapi_fuzz.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Benchmarks, run by hand only (tests/benchmarks; never part of `make test`): every one at its
# defaults, or some with BENCH and ARGS, e.g. `make bench BENCH=e2e ARGS="--n 5000 --reps 5"`.
BENCH ?= e2e api append scale sse
.PHONY: bench
bench: $(STAMP)
	for b in $(BENCH); do $(BIN)/python -m tests.benchmarks.bench_$$b $(ARGS) || exit 1; done
