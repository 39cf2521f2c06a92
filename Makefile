# `make run`: the embedded study end to end. `make beyond`: the same study with the methods beyond
# the paper added (config/beyond.yaml). `make report`: its HTML report (after a run).
# `make test`: the test suite. `make docs`: the README's figures from the embedded study. `make slurm`: the
# SLURM executor plugin, for the slurm profile. All create .venv if missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel (pip takes it from the local disk here). With CUDA: make TORCH="torch" run
TORCH ?= torch==2.13.0
CORES ?= 2
# pyproject.toml's extras to install (.ci/run adds slurm).
EXTRAS ?= test
# The parity tests' reference, pinned in pyproject.toml (extra lmms-eval-reference), without its dependencies.
LMMS_EVAL := $(shell sed -n 's/.*"\(lmms-eval==[^"]*\)".*/\1/p' pyproject.toml)

.PHONY: run beyond report test docs slurm clean

# constraints.txt: the library versions the committed numbers were computed with.
$(BIN)/snakemake: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	$(BIN)/pip install --quiet --no-deps "$(LMMS_EVAL)"
	touch $@

run: $(BIN)/snakemake
	$(BIN)/snakemake --cores $(CORES)

beyond: $(BIN)/snakemake
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml config/beyond.yaml

report: $(BIN)/snakemake
	$(BIN)/snakemake --report report.html

test: $(BIN)/snakemake
	$(BIN)/python -m pytest -q

# Runs the embedded study if it is not finished, then writes the README's tables and docs/ figures.
docs: $(BIN)/snakemake
	$(BIN)/python bench/docs.py

slurm: $(BIN)/snakemake
	$(BIN)/pip install --quiet -c constraints.txt -e ".[slurm]"

clean:
	rm -rf results .snakemake report.html
