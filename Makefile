# `make run`: the embedded study end to end. `make report`: its HTML report (after `make run`).
# `make test`: the test suite. All create .venv if missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel (pip takes it from the local disk here). With CUDA: make TORCH="torch" run
TORCH ?= torch==2.13.0
CORES ?= 2

.PHONY: run report test clean

$(BIN)/snakemake: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

run: $(BIN)/snakemake
	$(BIN)/snakemake --cores $(CORES)

report: $(BIN)/snakemake
	$(BIN)/snakemake --report report.html

test: $(BIN)/snakemake
	$(BIN)/python -m pytest -q

clean:
	rm -rf results .snakemake report.html
