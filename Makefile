# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test check lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/monitor --config config/monitor.yaml run

test: $(STAMP)
	$(BIN)/ruff check monitor tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q

check: $(STAMP)
	$(BIN)/monitor --config config/monitor.yaml check

bench: $(STAMP)
	$(BIN)/python bench/parse.py
	$(BIN)/python bench/match.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
