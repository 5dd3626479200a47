# The two commands the README opens with: `make demo` and `make test`.
# Both create ./.venv with the first Python 3.11+ found, install the package, and run.
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do command -v $$p >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench dev clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	# compile the engine's numba kernels into their on-disk cache now, at install time,
	# so that no user-facing first call pays for compilation
	$(BIN)/python -c "import macro_pipeline.engine as e; print(f'engine kernels compiled in {e.warm_up():.1f} s')"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/macro-pipeline demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check macro_pipeline macro_pipeline_tests bench

bench: $(STAMP)
	$(BIN)/python bench/engine_vs_vectorbt.py
	$(BIN)/python bench/sweep.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/pit_read.py
	$(BIN)/python bench/workers.py
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/backfill.py

dev: $(STAMP)
	$(BIN)/macro-pipeline dev

clean:
	-$(BIN)/macro-pipeline db stop
	rm -rf $(VENV) .macro_pipeline
