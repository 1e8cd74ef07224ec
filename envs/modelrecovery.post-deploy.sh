#!/bin/sh
# Installs the modelrecovery package into the environment of modelrecovery.yaml.
#
# Snakemake runs this once, right after creating the environment, with the environment
# activated, in its working directory, from a copy: <conda-prefix>/<hash>.post-deploy.sh.
# Neither that path nor the folder where conda runs the yaml's pip section leads back to
# the repository, so the package comes from:
#   MODELRECOVERY_SOURCE, when set: a checkout of this repository (installed editable) or
#     any pip requirement, e.g. a git URL at a tag, for the workflow used as a module;
#   otherwise the working directory, when it is a checkout (snakemake run in the repository
#     root).
# The install is editable so that jobs run the checkout's current code: Snakemake rebuilds
# the environment only when this file or the yaml changes.
set -eu

python="${CONDA_PREFIX:?the environment is not activated}/bin/python"
source="${MODELRECOVERY_SOURCE:-}"

if [ -z "$source" ]; then
    if [ -f pyproject.toml ] && [ -f src/modelrecovery/__init__.py ]; then
        source=$(pwd)
    else
        echo "modelrecovery.post-deploy.sh: the working directory ($(pwd)) is not a" \
            "checkout of modelrecovery. Run snakemake in the repository root, or set" \
            "MODELRECOVERY_SOURCE to a checkout or a pip requirement of the package" \
            "(e.g. git+https://HOST/OWNER/modelrecovery@TAG)." >&2
        exit 1
    fi
fi

# No dependencies: the yaml already provides every one of them.
if [ -d "$source" ]; then
    "$python" -m pip install --no-deps --no-build-isolation --editable "$source"
else
    "$python" -m pip install --no-deps --no-build-isolation "$source"
fi
