# `make run`: the whole study on config/config.yaml.  `make test`: the test suite.
# Both build .venv first. TORCH_SPEC picks the torch build: the default lets pip choose
# (CUDA wheels on a GPU machine); CI sets TORCH_SPEC=torch==2.13.0, a CPU build.

PYTHON ?= python3.11
VENV ?= .venv
TORCH_SPEC ?= torch>=2.2
CORES ?= all
CONFIG ?= config/config.yaml
BIN := $(VENV)/bin

.PHONY: run test venv report lint clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

run: venv
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --profile profiles/default \
		--configfile $(CONFIG) --cores $(CORES)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --profile profiles/default \
		--configfile $(CONFIG) --report results/report.html

test: venv
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --lint --configfile $(CONFIG)

clean:
	rm -rf results logs .snakemake
