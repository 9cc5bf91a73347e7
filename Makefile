# rnnzoo: `make install demo` trains the default model and evaluates it; `make install test` runs the tests.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch 2.13.0 is pinned for set-up because it resolves to a CPU build on the project's machines;
# any torch >= 2.2 works (pyproject.toml).
TORCH  ?= torch==2.13.0

.PHONY: install demo test test-slow lint bench bench-data reproduce reproduce-quick tensorboard clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"

# Train the default model (lstm) on the default task (copy), then evaluate its best checkpoint
# (overwrite=true: the demo replaces its own last run, outputs/demo).
demo:
	$(BIN)/rnnzoo train hydra.run.dir=outputs/demo overwrite=true
	$(BIN)/rnnzoo eval checkpoint=outputs/demo/checkpoints/best.pt split=test hydra.run.dir=outputs/demo/eval

test:
	$(BIN)/python -m pytest -q

test-slow:
	$(BIN)/python -m pytest -q -m slow

# ruff's lint rules (pyproject.toml [tool.ruff]): pycodestyle, pyflakes, import order
lint:
	$(BIN)/ruff check .

# Every registered model at two sizes (docs/bench.md), then the trainer's overhead over a bare
# PyTorch loop, which bench.py does not measure. scripts/bench_cells.py (reference loops vs
# kernels, docs/bench_cells.md) runs on its own: bench.py has its twin ratios and matmul shares.
bench:
	$(BIN)/python scripts/bench.py --out docs/bench.md
	$(BIN)/python scripts/bench_trainer.py

# What a corpus's size costs (issue 15): token-cache preparation, time to the first training step
# and peak memory on 1 to 1,000 MB corpora (docs/bench_data.md; corpora and caches in /tmp); then
# subword tokenizing against HF's encode_batch, interleaved block by block in one process.
bench-data:
	$(BIN)/python scripts/bench_data.py --out docs/bench_data.md
	$(BIN)/python -m scripts.bench_tokenize --corpus /tmp/rnnzoo_bench_data/corpus_100MB.txt --out docs/bench_data.md

# The lecture as experiments: every run, then docs/results.md and its plots (hours: see docs/results.md).
# Finished runs are kept in outputs/reproduce/ and not trained again, so an interrupted run resumes.
# experiments/ is not installed: it runs as a module, from the checkout's root.
reproduce:
	$(BIN)/python -m experiments.reproduce

# The same pipeline at CI-sized budgets (under 20 minutes): outputs/reproduce/quick/results.md
reproduce-quick:
	$(BIN)/python -m experiments.reproduce --quick

tensorboard:
	$(BIN)/tensorboard --logdir outputs --host 127.0.0.1 --port 6006

clean:
	rm -rf outputs multirun build dist *.egg-info
