# Baton: `make run` sets up and runs everything; `make test` sets up and runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup lint pytest clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/python -m config.devstack run

test: setup lint
	$(BIN)/python -m config.devstack test

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy .

clean:
	rm -rf $(VENV) .data
