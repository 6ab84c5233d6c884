# `make help` lists the targets. Every target creates the virtualenv itself when needed.
SHELL := /bin/bash
PY_VERSION ?= 3.11
VENV ?= .venv
PY := $(VENV)/bin/python
UV ?= $(shell command -v uv 2>/dev/null || echo $(VENV)/bin/uv)
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | sha256sum | cut -c1-12)
export MLFLOW_DISABLE_TELEMETRY ?= true
export DO_NOT_TRACK ?= true
export GX_ANALYTICS_ENABLED ?= False

# Your own dataset: `make init DATA=file.csv TARGET=column [EVENT_TIME=column] [TASK=regression] [OUT=dir]`,
# then `make demo CONFIG=dir/pipeline.yaml` (CONFIG becomes MLOPS_CONFIG for every command).
ifneq ($(CONFIG),)
export MLOPS_CONFIG := $(abspath $(CONFIG))
endif

.PHONY: help venv lock init config-check demo demo-quick test lint typecheck lint-imports unit integration bench clean env up down e2e
.DEFAULT_GOAL := help

help:  ## list targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv>=0.5"
	uv venv --quiet --allow-existing --python $(PY_VERSION) $(VENV)
	uv pip install --quiet --python $(PY) -r requirements.lock
	uv pip install --quiet --python $(PY) --no-deps -e .
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP)  ## create .venv from the pinned requirements.lock

lock:  ## re-resolve requirements.lock from pyproject.toml
	uv pip compile pyproject.toml --extra dev --python-version $(PY_VERSION) -o requirements.lock

init: venv  ## scaffold a config from your data: make init DATA=file.csv TARGET=column [EVENT_TIME=..] [TASK=..] [OUT=..]
	@test -n "$(DATA)" -a -n "$(TARGET)" || { echo "usage: make init DATA=file.csv TARGET=column [EVENT_TIME=column] [TASK=classification|regression] [OUT=dir]"; exit 2; }
	$(PY) -m pipelines.cli init --data "$(DATA)" --target "$(TARGET)" $(if $(EVENT_TIME),--event-time "$(EVENT_TIME)") $(if $(TASK),--task $(TASK)) $(if $(OUT),--out "$(OUT)")

config-check: venv  ## can every stage act with this config (CONFIG=... or MLOPS_CONFIG) on its data?
	$(PY) -m pipelines.cli config check

demo: venv  ## the main job on embedded defaults (SQLite, local files): the full 2013 loop (CONFIG=... for yours)
	$(PY) -m pipelines.replay

demo-quick: venv  ## a short replay (a few months) for a quick look
	$(PY) -m pipelines.replay --quick

lint: venv  ## ruff (incl. Airflow AIR rules)
	$(VENV)/bin/ruff check dags pipelines tests benchmarks
	$(VENV)/bin/ruff format --check dags pipelines tests benchmarks

typecheck: venv  ## mypy on pipelines/ and dags/
	$(VENV)/bin/mypy

lint-imports: venv  ## import-linter: the layer contracts in pyproject.toml
	$(VENV)/bin/lint-imports

unit: venv  ## the unit tier: tests/unit (pure functions on inline data, < 60 s)
	$(VENV)/bin/pytest -q tests/unit

integration: venv  ## the integration tier: tests/integration (real DAG runs, GX/MLflow/Evidently on real months)
	$(VENV)/bin/pytest -q --durations=15 tests/integration

test: venv lint typecheck lint-imports unit integration  ## ruff, mypy, lint-imports, then the unit and integration tiers (not the compose e2e: `make e2e`)

bench: venv  ## run every benchmark (prints figures)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:  ## remove runtime state (var/)
	rm -rf var

# ---------------------------------------------------------------- platform stack (docker-compose)
.PHONY: image
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
COMPOSE_PROJECT ?= mlops
MLOPS_IMAGE ?= mlops-pipeline:local
export MLOPS_IMAGE

env:  ## write .env with random secrets for the compose stack (never overwrites existing values)
	python3 scripts/make_env.py

image:  ## build the project image (infra/Dockerfile) used by every project service
	docker build -f infra/Dockerfile -t $(MLOPS_IMAGE) .

up: env image  ## start the platform stack and wait until every service is healthy (URLs: docs/platform.md)
	$(COMPOSE) -p $(COMPOSE_PROJECT) up -d --no-build $(if $(WORKERS),--scale airflow-worker=$(WORKERS))
	python3 scripts/compose_stack.py wait -p $(COMPOSE_PROJECT) --timeout 900
	@echo "Airflow http://127.0.0.1:$${AIRFLOW_PORT:-18301}  MLflow http://127.0.0.1:$${MLFLOW_PORT:-18302}  gateway http://127.0.0.1:$${GATEWAY_PORT:-18303}  Evidently http://127.0.0.1:$${EVIDENTLY_PORT:-18304}  Prometheus http://127.0.0.1:$${PROMETHEUS_PORT:-18305}  Alertmanager http://127.0.0.1:$${ALERTMANAGER_PORT:-18306}  (logins: .env)"

# `env` first: compose interpolates every required secret even to stop a stack, and an .env written
# before an upgrade lacks the new ones (make env only appends what is missing).
down: env  ## stop the platform stack (volumes kept; `$(COMPOSE) -p $(COMPOSE_PROJECT) down -v` wipes them)
	$(COMPOSE) -p $(COMPOSE_PROJECT) down --remove-orphans

e2e: venv  ## the e2e tier: tests/e2e (build the image, bring the stack up, drive one loop, tear down; ~15 min)
	$(VENV)/bin/pytest tests/e2e -v -s
