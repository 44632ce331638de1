# RoboCache developer commands. Each target sets up what it needs in .venv (torch 2.14.1 from the local
# wheel cache: a CUDA build, so the CUDA kernels compile here even without a GPU), builds the op library
# when its sources changed, then runs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.14.1
export CUDA_HOME ?= /usr/local/cuda
export TORCH_CUDA_ARCH_LIST ?= 9.0
export MAX_JOBS ?= 2

SOURCES := $(shell find ops_cuda -type f) setup.py pyproject.toml

.PHONY: all build test demo bench wheel lint clean device-lib

all: test

$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH_SPEC)" setuptools wheel ninja
	touch $@

$(VENV)/.built: $(VENV)/.torch $(SOURCES)
	$(PY) -m pip install -q --no-build-isolation -e ".[test]"
	touch $@

build: $(VENV)/.built

test: build
	$(PY) -m pytest tests -q --cov=robocache --cov=meta_kernels --cov-report=term

demo: build
	$(PY) -m robocache demo

bench: build
	$(PY) -m pip install -q numpy matplotlib tqdm  # = the [bench] extra, without rebuilding the package
	$(PY) -m robocache bench --json profiling/results/bench_all.json --plot profiling/results/bench_all.png

wheel: $(VENV)/.torch
	PYTHON=$(PY) bash .ci/wheel

# The op library built against the lent GPU machine's torch (2.11.0+cu130), for .ci/gpu's PREBUILT (see .ci/device_lib).
device-lib:
	bash .ci/device_lib

lint: $(VENV)/.torch
	$(PY) -m pip install -q ruff
	$(PY) -m ruff check robocache meta_kernels tests profiling

clean:
	rm -rf build dist robocache/_C*.so $(VENV)/.built
