# xpm-sync: `make demo`, `make test`. Both build .venv from the pins when it is missing or stale.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.xpm-sync-installed

export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False

.PHONY: venv test check lint demo airflow stack lock clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml sandbox/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	# The product, then the developer harness beside it (the sandbox, the demo, the local stack: sandbox/).
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e . -e sandbox
	@touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Two workers: the end-to-end tests (each a whole Airflow) one after another on one, the rest beside them.
TEST_WORKERS ?= 2

test: lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

# The fast tier: lint, types, the unit tests (the harness's too), the DAG files and the XPM page's routes (FastAPI's
# TestClient with Airflow's auth manager). `make test` runs everything.
check: lint
	$(BIN)/python -m pytest tests/unit tests/devtools tests/dags tests/integration/web

demo: $(STAMP)
	@$(BIN)/xpm-dev demo

# Airflow's port: `make airflow PORT=8090`.
PORT ?= 8080

airflow: $(STAMP)
	@$(BIN)/xpm-dev demo --serve --port $(PORT)

# The production stack without Docker: CeleryExecutor, 2 workers, Redis and PostgreSQL on loopback.
stack: $(STAMP)
	@$(BIN)/xpm-dev stack --port $(PORT)

# Regenerate the lock from a working .venv (after changing requirements*.txt).
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable --disable-pip-version-check | sort -f > constraints.txt

clean:
	rm -rf $(VENV) .airflow .demo .stack .pytest_cache .mypy_cache .ruff_cache
