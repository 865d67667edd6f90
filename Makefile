# The two commands: `make run` and `make test`. Everything else is a helper for them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | cksum | cut -d' ' -f1)

.PHONY: run run-check test lint typecheck install clean bench

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11 or newer is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

## Set up the embedded defaults (SQLite, filesystem broker) and start web, worker,
## scheduler and the TikTok sandbox on http://127.0.0.1:8000. Ctrl-C stops all.
run: export DEBUG ?= true
run: $(STAMP)
	$(BIN)/python scripts/run.py

run-check: export DEBUG ?= true
run-check: $(STAMP)
	$(BIN)/python scripts/run.py --check --customers $${DEMO_CUSTOMERS:-500}

## Run every test. Browser tests need Debian's chromium (`.ci/run` installs it).
test: export DEBUG ?= true
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	DEBUG=true $(BIN)/mypy .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache
