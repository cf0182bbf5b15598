# Two commands on a fresh machine (Debian/Ubuntu, Python 3.11, no GPU):
#   make reproduce   # the main job: Mask R-CNN Table 2 at the embedded default (mini) scale
#   make test        # the test suite (smoke scale, CPU)
# Both create .venv and install segbench (pip, pyproject.toml) when needed.
#
# Variables: TARGET (a Snakemake target, default reproduce_table2), SCALE (smoke | mini | paper),
# CORES (default all), FORCE=1 (retrain every run of TARGET from scratch instead of reusing results).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SCALE ?= mini
TARGET ?= reproduce_table2
CORES ?= all
FORCE ?=
STAMP := $(VENV)/.segbench-installed
export PATH := $(abspath $(BIN)):$(PATH)

RETRAIN := $(filter 1 yes true,$(FORCE))
# The one Snakemake command line: targets first, --config last (Snakemake reads every word after
# --config as key=value, so a target written after it is taken for config).
SNAKEMAKE = $(BIN)/snakemake --cores $(CORES) $(1) $(if $(RETRAIN),--forcerun train) \
	--config scale=$(or $(2),$(SCALE)) $(if $(RETRAIN),retrain=1)

.PHONY: install reproduce reproduce-all rehearse rehearse-ci tables status test lint bench dry-run screenshots clean-smoke

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# What will be trained and why, then the DAG.
reproduce: install
	$(BIN)/segbench status $(TARGET) --scale $(SCALE) $(if $(RETRAIN),--retrain)
	$(call SNAKEMAKE,$(TARGET))

reproduce-all:
	$(MAKE) reproduce TARGET=reproduce_all

# Only re-assemble TARGET's tables and pages from the run results on disk (no training).
tables: install
	$(BIN)/segbench table $(TARGET:reproduce_%=%) --scale $(SCALE) --with-shared
	$(BIN)/segbench report --scale $(SCALE) --no-figures

status: install
	$(BIN)/segbench status $(TARGET) --scale $(SCALE)

test: install
	$(BIN)/python -m pytest -q --durations=15

lint: install
	$(BIN)/ruff check segbench tests benchmarks examples
	$(BIN)/ruff format --check segbench tests benchmarks examples
	$(BIN)/snakemake --lint

dry-run: install
	$(BIN)/snakemake -n reproduce_all --config scale=$(SCALE)
	$(BIN)/dvc repro --dry

bench: install
	$(BIN)/segbench bench all
	$(BIN)/python benchmarks/bench_data_gen.py
	$(BIN)/segbench bench report

# The paper scale rehearsed on this CPU (scale rehearsal: every registry run for a few iterations at the
# paper's 800 x 1333 inputs, on generated data in the real datasets' layouts; see README, "Rehearsal").
# rehearse-ci: CI's subset (scales.rehearsal.ci_runs), trained and evaluated.
rehearse:
	$(MAKE) reproduce TARGET=reproduce_all SCALE=rehearsal

rehearse-ci: install
	$(call SNAKEMAKE,rehearse_ci,rehearsal)

# The README's screenshots, re-taken from the committed pages (headless Chromium; docs/screenshots/retake.py).
screenshots: install
	$(BIN)/python docs/screenshots/retake.py

clean-smoke:
	rm -rf results/smoke reports/smoke logs/smoke
