# Two commands do all set-up: `make demo` (train on the embedded data) and
# `make test` (the whole suite). Both create .venv from requirements.lock once.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.greensed-installed

.PHONY: install demo test test-fast lint bench clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/greensed train --stop plateau

test: $(STAMP)
	$(BIN)/ruff check greensed tests benchmarks examples
	$(BIN)/python -m pytest -q

# The everyday inner loop: everything that neither trains nor spawns (< 1 min on 2 cores).
test-fast: $(STAMP)
	$(BIN)/ruff check greensed tests benchmarks examples
	$(BIN)/python -m pytest -q -m "not slow and not slurm"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
