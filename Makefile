# facebench: `make bench MODEL=<model> DATA=<dataset>` and `make test` are the two commands.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
TORCH_VERSION ?= 2.13.0
MODEL ?= all
DATA ?= synth
PROFILE ?= quick
SEED ?= 0
LEADERBOARDS ?= leaderboards
RUNS ?= runs
BENCH_ARGS ?=
# Several devices (README, "Several devices"): DEVICES per node, NODES (each started by torchrun or srun).
DEVICES ?=
NODES ?=
STRATEGY ?=
PRECISION ?=
DRIFT_ARGS ?=
# One stamp per Python environment: a new virtual environment installs again.
ENV_ID := $(shell $(PYTHON) -c "import hashlib, sys; print(hashlib.sha256(sys.prefix.encode()).hexdigest()[:12])" 2>/dev/null)
STAMP := .make/install-$(ENV_ID).stamp

.PHONY: install test lint bench leaderboard drift clean

install: $(STAMP)

# Torch goes in first, and only when none is importable: a user's CUDA build is never replaced,
# and on a bare machine the pinned CPU wheel is taken instead of several GB of CUDA packages.
$(STAMP): pyproject.toml
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install "torch==$(TORCH_VERSION)"
	$(PIP) install -e ".[dev]"
	@$(PYTHON) -c "import facebench" && mkdir -p $(dir $@) && touch $@

test: install
	$(PYTHON) -m pytest -q

lint: install
	$(PYTHON) -m ruff check src tests

bench: install
	$(PYTHON) -m facebench bench --model $(MODEL) --data $(DATA) --profile $(PROFILE) --seed $(SEED) \
		--leaderboards $(LEADERBOARDS) --runs $(RUNS) $(if $(DEVICES),--devices $(DEVICES)) $(if $(NODES),--num-nodes $(NODES)) \
		$(if $(STRATEGY),--strategy $(STRATEGY)) $(if $(PRECISION),--precision $(PRECISION)) $(BENCH_ARGS)

leaderboard: install
	$(PYTHON) -m facebench leaderboard --folder $(LEADERBOARDS)

drift: install
	$(PYTHON) -m facebench drift --no-progress $(DRIFT_ARGS)

clean:
	rm -rf .make build src/*.egg-info .pytest_cache
