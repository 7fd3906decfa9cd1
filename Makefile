# PromptRec — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU by default. A GPU user installs a CUDA build first, e.g.
#   make install TORCH_INDEX=https://download.pytorch.org/whl/cu128
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?=
TORCH_INDEX_ARG := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install data train test bench results lint format clean

help: ## show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements/constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==$(TORCH_VERSION)" $(TORCH_INDEX_ARG)
	$(BIN)/python -m pip install -q -c requirements/constraints.txt -e ".[dev]"
	@touch $@

install: $(STAMP) ## create .venv (if missing) and install torch, then the pinned stack and promptrec
	@echo "installed into $(VENV)"

data: $(STAMP) ## fetch MovieLens-100K (RecBole atomic files from PyPI) into data/
	$(BIN)/python -m promptrec.data.sources data

train: data ## train the default model (MiniLM-L6, question prompt, full tuning) and print test metrics
	$(BIN)/promptrec-train $(ARGS)

test: data ## run the whole test suite (tiny BERT, real data slices; a few minutes on 2 cores)
	$(BIN)/python -m pytest -q -n auto --maxprocesses=4 --dist load --durations=15 $(ARGS)

bench: data ## speed: framework vs plain PyTorch loops, token cache, catalogue eval (docs/performance.md)
	PROMPTREC_ROOT=. $(BIN)/python bench/train_speed.py $(ARGS)
	PROMPTREC_ROOT=. $(BIN)/python bench/data_prep.py
	PROMPTREC_ROOT=. $(BIN)/python bench/catalogue_eval.py

results: $(STAMP) ## regenerate the tables of docs/results.md and README.md from the run folders in docs/results/runs
	$(BIN)/promptrec-summarize docs/results/runs --results docs/results.md
	$(BIN)/promptrec-summarize docs/results/runs --results README.md

lint: $(STAMP) ## ruff lint + format check
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: $(STAMP) ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

clean: ## remove caches and run outputs (keeps .venv and data/)
	rm -rf outputs/*/ .pytest_cache .ruff_cache wandb data/cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
