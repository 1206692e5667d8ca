# Warden: run `make test` for the whole suite, `make up` for the local stack.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test lint bench up demo clean

setup:
	deploy/setup.sh

test: setup
	deploy/engine.sh run -- $(PYTHON) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: setup
	deploy/engine.sh run -- $(PYTHON) benchmarks/run_all.py

up: setup
	deploy/engine.sh run -- $(PYTHON) -m deploy.stack up

demo: setup
	$(PYTHON) -m deploy.demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
