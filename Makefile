# Two entry points: `make serve` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest-xdist processes: the suite waits on servers and subprocesses as much as it computes.
TEST_PROCESSES ?= 3

.PHONY: serve test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/imagegate serve

# The scale profile's servers: Debian packages installed where missing (root, or sudo);
# the suite starts and stops PostgreSQL, Redis and S3 itself (tests/services.py).
test: $(STAMP)
	$(BIN)/python -m tests.services install
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n $(TEST_PROCESSES) --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/create_and_complete.py
	$(BIN)/python bench/hot_path.py

clean:
	rm -rf $(VENV) .imagegate .pytest_cache .mypy_cache .ruff_cache
