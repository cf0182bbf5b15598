# Two commands on a fresh machine (Debian/Ubuntu, Python 3.11, no GPU):
#   make reproduce   # the main job: Mask R-CNN Table 2 at the embedded default (mini) scale
#   make test        # the test suite (smoke scale, CPU)
# Both create .venv and install segbench (pip, pyproject.toml) when needed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SCALE ?= mini
TARGET ?= reproduce_table2
CORES ?= all
STAMP := $(VENV)/.segbench-installed
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install reproduce reproduce-all test lint bench dry-run clean-smoke

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

reproduce: install
	$(BIN)/snakemake --cores $(CORES) --config scale=$(SCALE) $(TARGET)

reproduce-all: install
	$(BIN)/snakemake --cores $(CORES) --config scale=$(SCALE) reproduce_all

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check segbench tests benchmarks
	$(BIN)/snakemake --lint

dry-run: install
	$(BIN)/snakemake -n --config scale=$(SCALE) reproduce_all
	$(BIN)/dvc repro --dry

bench: install
	$(BIN)/segbench bench all
	$(BIN)/python benchmarks/bench_data_gen.py
	$(BIN)/segbench bench report

clean-smoke:
	rm -rf results/smoke reports/smoke logs/smoke
