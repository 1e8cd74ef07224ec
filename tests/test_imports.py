"""The data and analysis modules import without torch.

Aggregation, analysis, plotting and import jobs only read and write tables; loading
torch for them costs seconds and memory per job. Each module is imported in a fresh
interpreter (an import in this process would see whatever earlier tests loaded).
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import modelrecovery.analysis

# Every analysis module (the stage's rule: analysis code does not import torch), and the
# torch-free modules of earlier stages that table-only jobs use.
TORCH_FREE = [
    *(f"modelrecovery.analysis.{m.name}"
      for m in pkgutil.iter_modules(modelrecovery.analysis.__path__)),
    "modelrecovery.cli.analyse",
    "modelrecovery.recover.selection",
    "modelrecovery.recover.parameters",
    "modelrecovery.design.export",
    "modelrecovery.world.ceiling",
    "modelrecovery.io",
    "modelrecovery.io.contracts",
    "modelrecovery.io.checks",
    "modelrecovery.importers",
]

_PROBE = ("import importlib, sys; importlib.import_module(sys.argv[1]); "
          "print('torch' in sys.modules)")


def _loads_torch(module: str) -> bool:
    done = subprocess.run([sys.executable, "-c", _PROBE, module], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"importing {module} failed:\n{done.stderr}"
    return done.stdout.strip() == "True"


@pytest.mark.parametrize("module", TORCH_FREE)
def test_module_does_not_import_torch(module):
    assert not _loads_torch(module), f"importing {module} loads torch"


def test_the_probe_sees_torch():
    """The check itself: a module that needs torch is reported as loading it."""
    assert _loads_torch("modelrecovery.recover.refit")
