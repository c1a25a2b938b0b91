# The two commands in the README: `make run` launches the app, `make test` runs the tests.
# Each creates .venv if missing and installs everything it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench venv clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/python main.py gui

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/ruff check .
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/train_overhead.py
	$(BIN)/python bench/science.py
	$(BIN)/python bench/projection.py
	QT_QPA_PLATFORM=offscreen $(BIN)/python bench/gui_responsiveness.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
