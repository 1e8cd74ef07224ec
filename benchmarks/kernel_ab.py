"""Time this checkout's kernel against another commit's, in one process, alternating.

    python benchmarks/kernel_ab.py --against HEAD~1          # ~30 s on 2 cores

The benchmark's jobs (kernel_benchmark.py, part 1: the default world's recovery jobs of
one generator, every training size) are fitted by this checkout's kernel and by the
kernel of ``--against`` (its ``src/modelrecovery``, taken with ``git archive`` and
imported under another name: its ``fitting`` package, or for a commit that predates the
package its ``probe`` module, which has the same entry points), alternately, each timed
as the best of ``--rounds``. Both see the same drift of the machine's speed, and neither
is compared with the baseline, whose share of the drift differs: a kernel change's
effect reads from the ratio, where the speedup verdict moves by 15-50 % between runs on
a shared VM. Prints per job both times, their ratio, both kernels' evaluations and the
largest relative difference of their objectives; the last line is the ratio over all
jobs.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import recovery_jobs as rj  # noqa: E402

from modelrecovery import fitting
from modelrecovery.fitting.allocator import keep_freed_memory

# Where a commit's kernel lives: the fitting package, or the single module that commits
# before the package hold (both export FitOptions, TripletSets and fit).
KERNEL_MODULES = ("fitting", "probe")


def kernel_at(commit: str, into: Path) -> ModuleType:
    """The kernel (``modelrecovery.fitting``, or ``modelrecovery.probe`` in a commit that
    predates the package) as of ``commit`` (of this repository), importable beside the
    checkout's own: extracted under ``into`` as a package named after the commit."""
    root = HERE.parent
    sha = subprocess.run(["git", "rev-parse", "--short", commit], cwd=root, check=True,
                         capture_output=True, text=True).stdout.strip()
    tar = subprocess.run(["git", "archive", sha, "src/modelrecovery"], cwd=root, check=True,
                         capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(tar)) as archive:
        # The extraction filters came with Python 3.11.4 (and 3.8.17, 3.9.17, 3.10.12);
        # an earlier 3.11 extracts this archive of the repository's own files without.
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(into, **safe)
    name = f"modelrecovery_{sha}"
    (into / "src" / "modelrecovery").rename(into / name)
    sys.path.insert(0, str(into))
    for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[loaded]  # an earlier extraction's: import this one
    package = into / name
    kernel = next(m for m in KERNEL_MODULES
                  if (package / m / "__init__.py").exists() or (package / f"{m}.py").exists())
    return importlib.import_module(f"{name}.{kernel}")


def options(module: ModuleType, cfg: dict, dtype: str, tolerance: str) -> object:
    """The benchmark's kernel options, built with ``module``'s FitOptions (an older
    commit's may lack newer fields)."""
    mine = rj.kernel_options(cfg, "cpu", dtype, tolerance)
    fields = module.FitOptions.__dataclass_fields__
    return module.FitOptions(**{k: v for k, v in dataclasses.asdict(mine).items()
                                if k in fields})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--against", required=True, help="a commit, e.g. HEAD~1 or a SHA")
    rj.add_job_arguments(ap)
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--tolerance", choices=["baseline", "config"], default="baseline")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--sizes", type=int, nargs="+", default=None,
                    help="training sizes (default: the config's)")
    args = ap.parse_args(argv)
    keep_freed_memory()
    jobs = rj.default_jobs(args.config, args.generator)
    pf, ps, pl = jobs.order()
    tdt = torch.float64 if args.dtype == "float64" else torch.float32
    totals = {"against": 0.0, "this": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        old = kernel_at(args.against, Path(tmp))
        kernels = {"against": old, "this": fitting}
        opts = {side: options(m, jobs.cfg, args.dtype, args.tolerance)
                for side, m in kernels.items()}
        print(f"kernel of {args.against} against this checkout's; best of {args.rounds}, "
              f"alternating; {args.dtype}, {args.tolerance} tolerances")
        for n_train in args.sizes or jobs.sizes:
            train = jobs.sets(n_train)
            runs = {}
            for side, m in kernels.items():
                sets = m.TripletSets.from_arrays(train, dtype=tdt)
                runs[side] = (lambda m=m, sets=sets, o=opts[side]:
                              m.fit(jobs.feats, sets, ps, pl, o, problem_features=pf))
                runs[side]()  # warm-up
            best, res = dict.fromkeys(runs, float("inf")), {}
            for _ in range(max(1, args.rounds)):
                for side, run in runs.items():
                    start = time.perf_counter()
                    res[side] = run()
                    best[side] = min(best[side], time.perf_counter() - start)
            for side in totals:
                totals[side] += best[side]
            a, b = (res[s].objective.double().numpy() for s in ("against", "this"))
            print(f"N={n_train:6d}  {args.against}: {best['against'] * 1e3:6.0f} ms "
                  f"({res['against'].evaluations} evaluations)  this: "
                  f"{best['this'] * 1e3:6.0f} ms ({res['this'].evaluations})  ratio "
                  f"{best['this'] / best['against']:.3f}  max rel. objective diff "
                  f"{float(np.max(np.abs(b - a) / np.abs(a))):.1e}", flush=True)
    print(f"this checkout takes {totals['this'] / totals['against']:.3f} of the time of "
          f"{args.against}'s kernel over these jobs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
