# Two entry points the README names: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo path-demo test lint clean

$(BIN)/hrm-edge: pyproject.toml
	$(PY) -m venv $(VENV)
	# torch first, pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[ort,dev]'  # the CPU onnxruntime; a GPU desktop: '.[gpu,dev]'
	touch $@

setup: $(BIN)/hrm-edge

demo: setup
	$(BIN)/hrm-edge demo --out demo_out

# the toolkit's path with a random-weights model (init, export, solve, compare, TensorRT row)
path-demo: setup
	PATH=$(abspath $(BIN)):$$PATH bash scripts/random_model_path.sh

# two pytest workers (pytest-xdist): the suite is mostly one-thread tests, so 2 cores halve its wall time
# (measured on the 2-vCPU dev machine, quiet: 324 s in one process, 231 s with -n 2). PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 2
test: setup
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --durations=10

lint: setup
	$(BIN)/ruff check hrm_edge tests

clean:
	rm -rf $(VENV) build *.egg-info demo_out path_demo_out
