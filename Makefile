# `make run`: the embedded study end to end. `make test`: the test suite. Both create .venv if missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel (pip takes it from the local disk here). With CUDA: make TORCH="torch" run
TORCH ?= torch==2.13.0
CORES ?= 2

.PHONY: run test clean

$(BIN)/snakemake: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

run: $(BIN)/snakemake
	$(BIN)/snakemake --cores $(CORES)

test: $(BIN)/snakemake
	$(BIN)/python -m pytest -q

clean:
	rm -rf results .snakemake
