# Two commands on a fresh machine (Debian/Ubuntu, Python 3.11, no GPU):
#   make reproduce   # the main job: Mask R-CNN Table 2 at the registry's default scale
#   make test        # the test suite (smoke scale, CPU)
# Both create .venv and install segbench (pip, pyproject.toml, the versions pinned in constraints.txt) when needed.
#
# Variables: TARGET (a Snakemake target, default reproduce_table2), SCALE (a registry scale, `segbench list`
# prints them; default: `default_scale` of segbench/registry/experiments.yaml, the one place that names it),
# CORES (default all), FORCE=1 (retrain every run of TARGET from scratch instead of reusing results).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# sed, not Python: it is read before `make install` has made .venv
DEFAULT_SCALE := $(shell sed -n 's/^default_scale: *\([A-Za-z0-9_]*\).*/\1/p' segbench/registry/experiments.yaml)
SCALE ?= $(DEFAULT_SCALE)
TARGET ?= reproduce_table2
CORES ?= all
FORCE ?=
# pytest workers of `make test` (pytest-xdist; the slow tests start first, tests/conftest.py); 0 = in one process
TEST_WORKERS ?= 2
STAMP := $(VENV)/.segbench-installed
export PATH := $(abspath $(BIN)):$(PATH)

RETRAIN := $(filter 1 yes true,$(FORCE))
# The one Snakemake command line: targets first, --config last (Snakemake reads every word after
# --config as key=value, so a target written after it is taken for config).
SNAKEMAKE = $(BIN)/snakemake --cores $(CORES) $(1) $(if $(RETRAIN),--forcerun train) \
	--config scale=$(or $(2),$(SCALE)) $(if $(RETRAIN),retrain=1)

.PHONY: install reproduce reproduce-all rehearse rehearse-ci tables status test lint bench dry-run screenshots clean-smoke

# pyproject.toml declares compatible ranges; constraints.txt pins the tested versions of everything.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -c constraints.txt -e ".[dev]"
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
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --durations=15

lint: install
	$(BIN)/ruff check segbench tests benchmarks examples scripts
	$(BIN)/ruff format --check segbench tests benchmarks examples scripts
	$(BIN)/snakemake --lint

dry-run: install
	$(BIN)/snakemake -n reproduce_all --config scale=$(SCALE)
	$(BIN)/dvc repro --dry

bench: install
	$(BIN)/segbench bench all
	$(BIN)/python benchmarks/bench_data_gen.py
	$(BIN)/segbench bench report

# The paper scale rehearsed on this CPU (scale rehearsal: every registry run for a few iterations at the
# paper's 800 x 1333 inputs, on generated data in the real datasets' layouts; see docs/rehearsal.md).
# rehearse-ci: CI's subset (scales.rehearsal.ci_runs), trained and evaluated.
rehearse:
	$(MAKE) reproduce TARGET=reproduce_all SCALE=rehearsal

rehearse-ci: install
	$(call SNAKEMAKE,rehearse_ci,rehearsal)

# The GPU path's first-contact check (scripts/gpu_check.py; docs/gpu.md, "GPUs and clusters"): each step in its
# own process, at most 8 minutes on one GPU; writes gpu_check.json and gpu_check.md to OUT (default
# results/bench/gpu_check/). No install step: on a lent GPU machine (no network) the tree runs as it is,
# with the Python that has torch (PYTHON_GPU; .venv's where there is one). gpu-check-cpu: the same steps at
# tiny sizes on the CPU (CI runs it).
PYTHON_GPU ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))
.PHONY: gpu-check gpu-check-cpu

gpu-check:
	PYTHONPATH=$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} $(PYTHON_GPU) scripts/gpu_check.py $(if $(OUT),--out "$(OUT)")

gpu-check-cpu: install
	$(BIN)/python scripts/gpu_check.py --cpu $(if $(OUT),--out "$(OUT)")

# The docs' screenshots, re-taken from the committed pages (headless Chromium; docs/screenshots/retake.py).
screenshots: install
	$(BIN)/python docs/screenshots/retake.py

# The documentation site (mkdocs.yml, docs/) into site/ (git-ignored); --strict: a warning or a dead link
# or anchor (scripts/doc_links.py) fails it.
.PHONY: docs digest
docs: install
	$(BIN)/mkdocs build --strict --site-dir site

# The results digest blocks of README.md and docs/results.md, rewritten from results/<scale>/tables/*.json.
digest: install
	$(BIN)/segbench table --summary --write

clean-smoke:
	rm -rf results/smoke reports/smoke logs/smoke
