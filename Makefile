# The two commands of the README's quick start, and the pieces they stand on.
# `make serve` runs the server on its embedded defaults (SQLite, echo model, offline speech).
# `make test` runs the whole suite: lint, type check, tests.
# `make test-hypercorn` runs the frame-sink suite on the lowest and the newest hypercorn the
# bounds in pyproject.toml allow (the fast path leans on hypercorn's internals).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: serve test lint typecheck pytest bench clean test-hypercorn

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

# The lowest hypercorn the bounds allow, in a venv of its own: everything else as locked.
HYPERCORN_LOW := 0.17.0
LOW_VENV := .venv-hypercorn-low
SINK_SUITE := tests/sink tests/e2e/test_hypercorn_fallback.py tests/e2e/test_frames_together.py \
	tests/e2e/test_closing.py tests/e2e/test_heartbeat.py

test-hypercorn: $(VENV)/.installed $(LOW_VENV)/.installed
	$(BIN)/python -c 'import importlib.metadata as m; print("hypercorn", m.version("hypercorn"))'
	$(BIN)/python -m pytest -q $(SINK_SUITE)
	$(LOW_VENV)/bin/python -c 'import importlib.metadata as m; print("hypercorn", m.version("hypercorn"))'
	$(LOW_VENV)/bin/python -m pytest -q -p no:cacheprovider $(SINK_SUITE)

$(LOW_VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(LOW_VENV)
	grep -v '^hypercorn==' constraints.txt > $(LOW_VENV)/constraints.txt
	PYTHONWARNINGS=ignore $(LOW_VENV)/bin/pip install --quiet --disable-pip-version-check \
		-c $(LOW_VENV)/constraints.txt -e '.[test]' 'hypercorn[trio]==$(HYPERCORN_LOW)'
	touch $@

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
	rm -rf $(VENV) $(LOW_VENV) .pytest_cache .mypy_cache .ruff_cache
