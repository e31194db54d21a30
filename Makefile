# Two entry points: `make run` (set up, then the default workflow) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
SNAKEMAKE_ARGS ?=

.PHONY: venv run control experiments families seeds training-seeds mobilenet validity test test-fast lint dry-run report bench clean system-deps

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[test,slurm,lint]"
	touch $@

run: venv
	$(BIN)/snakemake --cores $(CORES) $(SNAKEMAKE_ARGS)

# The negative control beside the default run (reuses its models): the decoupled twin.
control: venv
	$(BIN)/snakemake --cores $(CORES) --configfile presets/decoupled.yaml $(SNAKEMAKE_ARGS)

# The controlled experiments with the grid's recipes instead of 4 epochs, in results/experiments-full/.
experiments: venv
	$(BIN)/snakemake --cores $(CORES) --configfile presets/experiments_full.yaml $(SNAKEMAKE_ARGS)

# Compression families (N:M, channels, int8) beside the default grid, compared at equal cost (reuses its models).
families: venv
	$(BIN)/snakemake --cores $(CORES) --configfile presets/families.yaml $(SNAKEMAKE_ARGS)

# The default experiment and its decoupled twin on two other generator seeds, each in its own results directory.
seeds: venv
	for s in 1 2; do $(BIN)/snakemake --cores $(CORES) --configfile presets/generator_seed$$s.yaml $(SNAKEMAKE_ARGS) || exit 1; done

# The default experiment and its twin with five training seeds instead of two, on the default data and
# generator seeds 1 and 2, each in <run>/training-seeds5/; then what they show and which pairs the BA changes rest on.
TRAINING_SEEDS_RUNS := results/training-seeds5 results/generator-seed1/training-seeds5 results/generator-seed2/training-seeds5
training-seeds: venv
	$(BIN)/snakemake --cores $(CORES) --configfile presets/training_seeds5.yaml $(SNAKEMAKE_ARGS)
	for s in 1 2; do $(BIN)/snakemake --cores $(CORES) --configfile presets/generator_seed$$s.yaml presets/training_seeds5.yaml \
	  --config results=results/generator-seed$$s/training-seeds5 $(SNAKEMAKE_ARGS) || exit 1; done
	$(BIN)/python benchmarks/validity.py $(TRAINING_SEEDS_RUNS)
	$(BIN)/python benchmarks/support_pairs.py $(TRAINING_SEEDS_RUNS)

# The default experiment at 98 % with the study's MobileNetV1 instead of small_cnn, in results/mobilenet-v1/; then what it shows.
mobilenet: venv
	$(BIN)/snakemake --cores $(CORES) --configfile presets/mobilenet.yaml $(SNAKEMAKE_ARGS)
	$(BIN)/python benchmarks/validity.py results/mobilenet-v1

# What the finished runs show, check by check (benchmarks/validity.py), then each training seed's own changes (benchmarks/seed_effects.py).
validity: venv
	$(BIN)/python benchmarks/validity.py $(wildcard results results/generator-seed1 results/generator-seed2)
	$(BIN)/python benchmarks/seed_effects.py $(wildcard results results/generator-seed1 results/generator-seed2)

dry-run: venv
	$(BIN)/snakemake -n $(SNAKEMAKE_ARGS)

test: venv
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

# Snakemake's linter, the rule files' formatter and ruff (lint + format) over the Python.
lint: venv
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test-fast: venv
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

report: venv
	$(BIN)/snakemake --report results/workflow_report.html

# System packages some tests use (they skip with a reason without them): Debian's Chromium
# for the report's browser check, a single-node Slurm for the cluster test. Needs root.
system-deps:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then \
	  echo "chromium: present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
	  echo "chromium missing: apt-get install chromium (the browser test skips without it)"; \
	fi
	@if [ "$$(id -u)" = 0 ]; then bash tests/slurm/setup.sh || echo "slurm: setup failed, the Slurm test will skip"; \
	else echo "slurm: not root, skipping tests/slurm/setup.sh (the Slurm test will skip)"; fi

clean:
	rm -rf results .snakemake

bench: venv
	$(BIN)/python benchmarks/bench_metrics.py
	$(BIN)/python benchmarks/bench_train.py
