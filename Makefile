# `make demo` runs the whole pipeline on the embedded demo; `make test` runs the tests.
# Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1

.PHONY: setup demo lint test test-all test-fast bench gpu-check ui exps seeds seeds-report compare compare-report clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

demo: setup
	$(BIN)/dvc repro

# ruff (configured in pyproject.toml); the test targets run it first
lint: setup
	$(BIN)/ruff check .

# what CI runs: lint, then every test but the `heavy` ones (whole-pipeline kill-and-resume,
# repair, experiment cleanup, torchrun: about 11 min); the 20 slowest tests are listed at the end
test: lint
	$(BIN)/pytest -m "not heavy" --durations=20

# everything, heavy tests included (before a release)
test-all: lint
	$(BIN)/pytest --durations=20

# the quick tier: no end-to-end `dvc repro` runs (tests marked slow)
test-fast: lint
	$(BIN)/pytest -m "not slow" --durations=20

bench: setup
	$(BIN)/python bench/preprocess.py
	$(BIN)/python bench/train_step.py

gpu-check: setup
	$(BIN)/python bench/gpu_check.py

# multi-seed results (docs/tracking.md, "Multi-seed results"): queue one experiment per seed and start
# the queue; then `make seeds-report` once `dvc queue status` shows them finished
SEEDS ?= 1 2 3
JOBS ?= 1
seeds: setup
	$(BIN)/python -m mpfas seeds queue --seeds $(SEEDS) --start --jobs $(JOBS)

seeds-report: setup
	$(BIN)/python -m mpfas seeds aggregate --out reports/seeds.md --plot plots/seeds.png

# both methods (HFN+MP and the SSDG-R baseline) on the same manifests and seeds: one queued
# experiment per (method, seed), then one table of mean +- std per method (docs/methods.md)
compare: setup
	$(BIN)/python -m mpfas seeds queue --seeds $(SEEDS) -S model.method=hfn_mp,ssdg --start --jobs $(JOBS)

compare-report: setup
	$(BIN)/python -m mpfas seeds aggregate --out reports/methods.md --plot plots/methods.png

# experiments side by side: the params that differ and the headline means (docs/tracking.md)
exps: setup
	$(BIN)/dvc exp show --only-changed \
	  --drop '(?!(data|demo|extract|align|manifests|model|train|score|evaluate)\.|Experiment|Created)' \
	  --keep 'mean\.(source_val_auc|source_val_eer|auc|hter_val|hter_eer|hter_oracle)_pct'

ui: setup  # the runs view with the headline columns (docs/tracking.md, "The runs view"); experiment 1 = mpfas in the demo DB
	@echo "open http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning&viewStateShareKey=mpfas-headline"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db

# the workspace's outputs (`dvc checkout` restores them but last.pt and run.json); frees no cache.
# Leftovers of experiments, deleted MLflow runs and unused cache: `python -m mpfas clean` (docs/tracking.md, "Cleaning up")
clean:
	rm -rf data/raw data/index data/frames data/faces data/manifests data/scores models plots reports
