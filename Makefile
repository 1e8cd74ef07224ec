# `make run`: the whole study on config/config.yaml.  `make test`: the test suite.
# `make slurm-profile`: install profiles/slurm as the global profile `slurm`, for
# `snakemake --profile slurm` on a cluster's login node.
# `make lint`: snakefmt and snakemake --lint.  The workflow is workflow/Snakefile, which
# Snakemake finds by itself from the repository root.
# Both build .venv first. TORCH_SPEC picks the torch build: the default lets pip choose
# (CUDA wheels on a GPU machine); CI sets TORCH_SPEC=torch==2.13.0, a CPU build.

# The first of these interpreters that is Python 3.11 to 3.13 (override: make PYTHON=...).
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3 python; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; \
	sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null && \
	{ echo $$p; break; }; done)
VENV ?= .venv
TORCH_SPEC ?= torch>=2.2
CORES ?= all
CONFIG ?= config/config.yaml
BIN := $(VENV)/bin

.PHONY: run test venv report lint clean slurm-profile

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "make: no Python 3.11-3.13 found on PATH;" \
		"install one or pass PYTHON=/path/to/python3.x" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

# Snakemake applies the workflow profile, profiles/default, by itself.
run: venv
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --configfile $(CONFIG) --cores $(CORES)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --configfile $(CONFIG) \
		--report results/report.html

# Needs no virtual environment: the profile is a file for whichever Snakemake runs it.
slurm-profile:
	sh scripts/install-slurm-profile.sh

test: venv
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

# The rule files' formatting (snakefmt, pinned in pyproject.toml) and Snakemake's own
# checks, on the study config and the test study.
lint: venv
	$(BIN)/snakefmt --check Snakefile workflow/
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --lint --configfile $(CONFIG)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --lint --configfile .test/config/config.yaml

clean:
	rm -rf results logs .snakemake
