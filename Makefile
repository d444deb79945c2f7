# Two entry points for a fresh machine: `make demo` and `make test`. Both create the environment first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/gradfit simulate --out examples/seed_iclv
	$(BIN)/gradfit fit examples/seed_iclv/seed_iclv.yaml --name demo
	$(BIN)/gradfit runs examples/seed_iclv/runs

test: $(BIN)/.installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/python -m pytest -q

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_seed.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
