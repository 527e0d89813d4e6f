# The two set-up commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench bench-all gpu-data clean

# Installs are stamped so a second `make test` does not reinstall; editing pyproject.toml re-installs.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.stamp-base: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.stamp-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.stamp-base

demo: $(VENV)/.stamp-base
	$(BIN)/dlzoo train digits

lint: $(VENV)/.stamp-dev
	$(BIN)/ruff check src tests

test: lint
	$(BIN)/python -m pytest

bench: $(VENV)/.stamp-dev
	$(BIN)/dlzoo bench all --out benchmarks/results/latest.json

# Fashion-MNIST for a lent GPU machine, which has none: carry .data along with benchmarks/on-gpu.sh.
FASHION_DIR ?= /usr/share/datasets/fashion-mnist
gpu-data:
	mkdir -p .data/fashion-mnist
	cp $(FASHION_DIR)/*-ubyte.gz .data/fashion-mnist/

clean:
	rm -rf runs .pytest_cache .ruff_cache
