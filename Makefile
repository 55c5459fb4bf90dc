# The two set-up commands of the README: `make demo` and `make test`.
# Each creates .venv from nothing; nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy src/bedrock_agentcore src/open_agentcore

test: lint
	scripts/install-test-deps.sh
	$(BIN)/pytest -q -n 2 --dist loadscope

# BASELINE=DIR: compare with that checkout (with its own .venv) instead of the fixed commit in
# benchmarks/baseline.py; QUICK=1: every table with few samples, as an end-to-end check.
# The server benchmarks sandbox their workers with bubblewrap and build the fork server's reaper
# with cc, which install-test-deps.sh installs.
bench: $(STAMP)
	scripts/install-test-deps.sh
	scripts/install-bench-deps.sh
	$(BIN)/python benchmarks/run.py $(if $(BASELINE),--baseline $(BASELINE)) $(if $(QUICK),--quick)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
