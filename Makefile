# The two commands a new user runs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint typecheck unit bench bench-data bench-pipelines bench-registry bench-serving bench-drift bench-loop clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## Set up and run the main job: train on a bundled dataset with tracking, print the runs table.
demo: $(STAMP)
	$(BIN)/python examples/quickstart.py

## Set up and run every check.
test: $(STAMP)
	$(MAKE) check

## Run the checks without reinstalling.
check: lint typecheck unit

lint:
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck:
	$(BIN)/mypy --strict src

unit:
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/tracking.py

## Compare LoopML's datasets with DVC 3.67 (creates .venv-dvc/ on first use).
bench-data: $(STAMP)
	$(BIN)/python benchmarks/datasets.py

## Measure pipeline overhead: a 20-step chain, local and Ray, and a fully cached rerun.
bench-pipelines: $(STAMP)
	$(BIN)/python benchmarks/pipelines.py

## Compare model log, load and single-row predict with MLflow's (uses .venv-mlflow/).
bench-registry: $(STAMP)
	$(BIN)/python benchmarks/registry.py

## Serve one forest with LoopML and `mlflow models serve`: req/s, p50, p99 (uses .venv-mlflow/).
bench-serving: $(STAMP)
	$(BIN)/python benchmarks/serving.py

## Drift on 100k x 25 columns against Evidently 0.7.23 (.venv-evidently/); monitor runs at 2 sizes.
bench-drift: $(STAMP)
	$(BIN)/python benchmarks/drift.py
	$(BIN)/python benchmarks/monitor.py

## Time the loop controller: one loop against a hand-written script, idle rounds, lease renewal.
bench-loop: $(STAMP)
	$(BIN)/python benchmarks/loop.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
