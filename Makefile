# The two commands in the README: `make demo` and `make test`. Both create .venv and install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo lint test unit integration bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[embedded,data,test]'
	$(BIN)/pip install -q --no-deps 'idiscore==1.2.0'  # pyproject's deid-table extra, without its pins (D-026)
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/radstream demo

# The import rule (pyproject's [tool.importlinter]; docs/architecture.md), before any test.
lint: install
	$(BIN)/python scripts/lint_imports.py

# Two workers, a test module each at a time (module-scoped stacks are not started twice): the
# stack tests mostly wait on group joins and child processes, which the other worker fills.
test: install lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=15 tests

unit: install
	$(BIN)/python -m pytest -q tests/unit

integration: install
	$(BIN)/python -m pytest -q tests/integration tests/e2e

bench: install
	$(BIN)/radstream bench

clean:
	rm -rf $(VENV) .radstream *.egg-info
