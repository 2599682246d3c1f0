# Two commands on a fresh machine:
#   make run    installs what the service needs and runs it (SQLite, console chat, sketch backend by default)
#   make test   installs the test set-up (CPU torch wheel) and runs the whole test suite
#   make test-quick  the tests not marked slow (about a third of the time), for iterating; no lint
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
# The CPU build of torch: on these machines pip finds it in the local wheel folder.
TORCH ?= torch==2.13.0

# Test workers (pytest-xdist): `auto` is one per CPU. The workers share nothing: each PostgreSQL test has a
# schema of its own, each loopback server a free port, each test its own tmp_path. The tests that run whole
# processes under a time limit share one worker (tests/conftest.py, PROCESS_MODULES).
PYTEST_WORKERS ?= auto

.PHONY: run test test-quick lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[acestep]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[acestep,dev]"
	touch $@

run: $(VENV)/.installed
	$(BIN)/songbot run

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup

test-quick: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup -m "not slow"

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/queue_bench.py
	$(BIN)/python bench/outbox.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
