# Baton: `make run` sets up and runs everything; `make test` sets up and runs every check.
# `make test ARGS="tests/engine/test_timers.py -k cron"` hands ARGS to pytest.
ARGS ?=
# `make run RELOAD=1`: Django's auto-reloading development server instead of gunicorn.
RELOAD ?=
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
MODELER_BUNDLE := frontend/dist/modeler.js

.PHONY: run test test-processes setup lint browser clean sandbox-user

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Front-end packages (htmx, bpmn-js) are served by Baton itself, never from a CDN.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

# The modeler page's bundle (bpmn-js + properties panel + Camunda provider), see frontend/.
$(MODELER_BUNDLE): $(NODE_STAMP) $(wildcard frontend/*.js)
	npm run --silent build

setup: $(STAMP) $(NODE_STAMP) $(MODELER_BUNDLE) sandbox-user

# Diagram scripts run as this unprivileged account (engine/bpmn/sandbox/jail.py). Only root
# can create it; without root the sandbox uses a user namespace instead.
sandbox-user:
	@[ "$$(id -u)" != 0 ] || getent passwd baton-sandbox >/dev/null || \
	  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
	  --user-group baton-sandbox

# Browser tests drive Debian's Chromium; install it when the machine lacks it.
browser:
	@test -x /usr/bin/chromium || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

run: setup
	$(if $(RELOAD),BATON_RELOAD=$(RELOAD) )$(BIN)/python -m config.devstack run

test: setup browser lint
	$(BIN)/python -m config.devstack test $(ARGS)

# The example diagrams' process tests (baton.testing, docs/testing-processes.md) with their
# coverage table and JSON report.
test-processes: setup
	$(BIN)/python -m config.devstack test tests/processes/test_examples_with_plugin.py \
	  tests/processes/test_trip_booking_with_plugin.py \
	  --baton-coverage=process-coverage.json $(ARGS)

# Models without their migration fail the lint. The check needs no database: without one
# Django only warns that it could not compare the migration history, which is silenced here.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports
	$(BIN)/python -W "ignore:Got an error checking a consistent migration history:RuntimeWarning" \
	  manage.py makemigrations --check --dry-run

clean:
	rm -rf $(VENV) node_modules .data
