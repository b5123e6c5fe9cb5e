# The two commands: `make dev` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: dev test lint bench bench-bridge bench-checkout bench-simulation clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

dev: $(STAMP)
	$(BIN)/microcommerce dev $(ARGS)

test: $(TEST_STAMP)
	bash scripts/ensure_mariadb.sh
	$(BIN)/ruff check microcommerce tests bench
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: $(TEST_STAMP)
	$(BIN)/ruff check microcommerce tests bench

bench: bench-bridge bench-checkout bench-simulation

bench-bridge: $(TEST_STAMP)
	$(BIN)/python bench/bridge_roundtrip.py

bench-checkout: $(TEST_STAMP)
	$(BIN)/python bench/checkout_load.py --shoppers 1,8,32

bench-simulation: $(TEST_STAMP)
	$(BIN)/python bench/simulation.py --duration 600 --shoppers 32 --faults all --seeds 1,2,3

clean:
	rm -rf $(VENV) var .pytest_cache
