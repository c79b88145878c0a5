# The two commands of the README's quick start, and the pieces they stand on.
# `make serve` runs the server on its embedded defaults (SQLite, echo model, offline speech).
# `make test` runs the whole suite: lint, type check, tests.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: serve test lint typecheck pytest bench clean

serve: $(VENV)/.serve
	$(BIN)/pichat serve

test: lint typecheck pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed
	$(BIN)/mypy

pytest: $(VENV)/.installed
	$(BIN)/python -m pytest

bench: $(VENV)/.installed
	$(BIN)/python bench/run.py --preset table --json bench/results.json

# Serving installs the server and its offline speech recogniser; testing adds the test and
# benchmark tools. Both install the versions pinned in constraints.txt. PYTHONWARNINGS keeps
# setuptools' notes about editable installs off the first run's screen.
PIP_INSTALL := PYTHONWARNINGS=ignore $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.serve: pyproject.toml constraints.txt | $(BIN)/python
	@echo "make: installing the server into $(VENV) (first run only)"
	$(PIP_INSTALL) -e '.[offline]'
	touch $@

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e '.[test,bench]'
	touch $@ $(VENV)/.serve

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
