# par-lightning developer commands. `make help` lists them.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
CONFIG ?= experiments/quickstart.yaml

.DEFAULT_GOAL := help
.PHONY: help install train test test-slurm test-all lint bench clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e ".[dev]"
	touch $@

install: $(VENV)/.installed ## Create .venv and install the project with its dev tools

train: install ## Run the main job (CONFIG=experiments/quickstart.yaml): fit, then test the best checkpoint
	$(VENV)/bin/lightning fit --config $(CONFIG)

test: install ## Run the default test suite (CPU, tiny models)
	$(PY) -m pytest

test-slurm: install ## The `slurm` tests: a localhost Slurm (root; installs Debian's slurm packages if missing)
	$(PY) -m pytest -m slurm

test-all: install ## Run every test, slow ones included
	$(PY) -m pytest -m ""

lint: install ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: install ## Run the benchmarks (results in benchmarks/results/)
	$(PY) benchmarks/synth_speed.py
	$(PY) benchmarks/data_loading.py
	$(PY) benchmarks/alm_speed.py

clean: ## Remove the venv, caches, generated data and runs
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info data runs lightning_logs wandb
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
