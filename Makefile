# `make run`: the embedded study end to end. `make beyond`: the same study with the methods beyond
# the paper added (config/beyond.yaml). `make report`: its HTML report (after a run; without one,
# which cells are missing). `make docs`: the README's figures from the embedded study.
# `make test`: the test suite (with the SLURM executor plugin its SLURM test needs). `make slurm`:
# that plugin alone, for the slurm profile. All create .venv if missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel (pip takes it from the local disk here). With CUDA: make TORCH="torch" run
TORCH ?= torch==2.13.0
CORES ?= 2
# The parity tests' reference, pinned in pyproject.toml (extra lmms-eval-reference), without its dependencies.
LMMS_EVAL := $(shell sed -n 's/.*"\(lmms-eval==[^"]*\)".*/\1/p' pyproject.toml)

.PHONY: run beyond report test docs slurm clean

# constraints.txt: the library versions the committed numbers were computed with.
$(BIN)/snakemake: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test]"
	$(BIN)/pip install --quiet --no-deps "$(LMMS_EVAL)"
	touch $@

run: $(BIN)/snakemake
	$(BIN)/snakemake --cores $(CORES)

beyond: $(BIN)/snakemake
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml config/beyond.yaml

report: $(BIN)/snakemake
	$(BIN)/tunebench report

test: $(BIN)/snakemake $(BIN)/.slurm-plugin
	$(BIN)/python -m pytest -q

# Runs the embedded study if it is not finished, then writes the README's tables and docs/ figures.
docs: $(BIN)/snakemake
	$(BIN)/python bench/docs.py

# An extra: installed, the plugin asks SLURM for its settings whenever snakemake starts (pyproject.toml).
$(BIN)/.slurm-plugin: $(BIN)/snakemake
	$(BIN)/pip install --quiet -c constraints.txt -e ".[slurm]"
	touch $@

slurm: $(BIN)/.slurm-plugin

clean:
	rm -rf results .snakemake report.html
