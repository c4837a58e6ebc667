# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test check lint bench clean container-test fuzz

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -m compileall -q monitor  # as an installed package has it (bench/harness.py)
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/monitor --config config/monitor.yaml run

test: $(STAMP)
	$(BIN)/ruff check monitor tests bench
	$(BIN)/ruff format --check monitor tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q -n 2  # both cores: the suite stays under five minutes

# The image as a service: build it with podman (or docker), run it with no configuration, check
# the log, /healthz, the HEALTHCHECK, /metrics and a clean stop (tests/test_container.py).
# Skipped, saying so, without a container engine. CI runs it after `make test`.
container-test: $(STAMP)
	MONITOR_CONTAINER_TEST=1 $(BIN)/pytest -q -rs tests/test_container.py

# The parse+normalize fuzz test of the suite, longer (tests/test_fuzz.py): FUZZ_EXAMPLES=N to
# change how long.
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-20000} $(BIN)/pytest -q -p no:cacheprovider \
		--hypothesis-show-statistics tests/test_fuzz.py

check: $(STAMP)
	$(BIN)/monitor --config config/monitor.yaml check

# The fast benchmarks (bench/poll.py and bench/scale.py take minutes: run them by hand).
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/parse.py
	$(BIN)/python bench/match.py
	$(BIN)/python bench/fulltext.py
	$(BIN)/python bench/stories.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
