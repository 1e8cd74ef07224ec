"""Command line: ``modelrecovery <subcommand>``, one per workflow step.

Every subcommand reads validated inputs and writes its outputs atomically, all or
nothing. On bad input it prints one line naming the file and the problem and exits with
status 2; a failure of its environment (a full disk, too little memory) is one line too,
naming the file or the setting to change, with status 1.

The subcommands live in one module per stage of the workflow; each rule file
(workflow/rules/) calls the subcommands of one module:

==============  =============================================  ===============
rule file       subcommands                                    module
==============  =============================================  ===============
data.smk        synthesize, import, import-*, *-scores         :mod:`.world`
data.smk        things-like                                    :mod:`.things_like`
align.smk       align, calibrate                               :mod:`.align`
simulate.smk    simulate                                       :mod:`.simulate`
recover.smk     recover                                        :mod:`.recover`
design.smk      design static|adaptive|export|compare|next     :mod:`.design`
analyse.smk     aggregate, analyse-*, compare-methods          :mod:`.analyse`
analyse.smk     analyse-ranking, compare-regularisers          :mod:`.analyse_ranking`
report.smk      plot                                           :mod:`.report`
published.smk   import-published                               :mod:`.published`
==============  =============================================  ===============

Options shared between them (fitting, design, NAME=PATH values, named outputs) are in
:mod:`.args`; ``design next`` is :mod:`.design_next`.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import traceback
from pathlib import Path

from ..errors import InputError, ResourceError
from ..io import outputs
from . import (align, analyse, analyse_ranking, design, published, recover, report,
               simulate, things_like, world)
from .args import fit_parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelrecovery", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    fit = fit_parent()
    world.register(sub)
    things_like.register(sub)
    align.register(sub, fit)
    simulate.register(sub)
    recover.register(sub, fit)
    analyse.register(sub)
    analyse_ranking.register(sub)
    report.register(sub)
    published.register(sub)
    design.register(sub, fit)
    return parser


def _failure_line(exc: BaseException) -> str | None:
    """The one line for a failure of the job's environment (disk, memory, permissions)
    rather than of its input; None for anything else."""
    if isinstance(exc, ResourceError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return ("out of memory: the job needs more than this machine or its allocation "
                "gives; raise the rule's mem_mb (SLURM) or use fewer triplets or feature "
                "dimensions")
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, getattr(torch.cuda, "OutOfMemoryError", ())):
        return ("out of GPU memory: lower fitting.max_memory_gb so the kernel splits its "
                "batches, or use a GPU with more memory")
    if isinstance(exc, OSError):
        target = exc.filename
        where = f"{target}: " if target else ""
        if exc.errno == errno.ENOSPC:
            return (f"{where}no space left on the device; free space there or set "
                    "'results' to a folder on a larger disk")
        if exc.errno == errno.EDQUOT:
            return f"{where}disk quota exceeded; free space or set 'results' elsewhere"
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"{where}permission denied ({exc.strerror}); check who owns it"
        return f"{where}{exc.strerror or exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status: 2 for bad input, 1 for a failure of the
    environment or of the program. Either way the failure is one line on stderr and the
    command leaves no output behind (``--verbose`` adds the traceback)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    command = " ".join(filter(None, [args.command, getattr(args, "design_command", None)]))
    prefix = f"modelrecovery {command}: error:"
    try:
        with outputs.all_or_nothing():
            args.func(args)
    except InputError as exc:
        print(f"{prefix} {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - every failure ends as one line
        if args.verbose:
            traceback.print_exc()
        line = _failure_line(exc)
        if line is None:
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            line = (f"unexpected {type(exc).__name__}: {exc} (at "
                    f"{Path(frame.filename).name}:{frame.lineno}); this is a bug or an "
                    "input the program does not check: please report it with the "
                    "traceback from --verbose")
        print(f"{prefix} {line}", file=sys.stderr)
        return 1
    if getattr(args, "log_peak_memory", False):
        # A fitting job's own measure of what it needed: what its memory request and
        # fitting.max_memory_gb are sized by.
        from ..fitting.memory import peak_memory

        logging.getLogger(__name__).info(peak_memory())
    return 0


def run() -> None:
    """The ``modelrecovery`` program: :func:`main`, then an exit that skips the
    interpreter's teardown. Arrow's and torch's native thread pools can abort the process
    while they are destroyed at exit ("terminate called without an active exception",
    apache/arrow#34314), turning a finished job into a SIGABRT; every output is already
    in place and every stream flushed when ``os._exit`` runs."""
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
