# `make up` runs the whole system on embedded PostgreSQL + Redis; `make test` runs the suite.
# Both create the project virtualenv (.venv) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test lint typecheck check clean

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

test: $(STAMP) lint typecheck
	$(BIN)/pytest $(ARGS)

# The long schemathesis run over the whole OpenAPI document; `make test` runs a small share of it.
.PHONY: fuzz
fuzz: $(STAMP)
	ORCH_FUZZ_EXAMPLES=300 $(BIN)/pytest tests/contract/test_openapi_fuzz.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
