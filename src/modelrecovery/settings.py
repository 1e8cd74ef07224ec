"""The settings a user chooses, one list per option group: fitting and design.

Each :class:`Setting` is at once a config key, a command-line flag (``max_iter`` →
``--max-iter``) and a field of the options dataclass with the same default:
:data:`SETTINGS` of :class:`modelrecovery.fitting.FitOptions` (config ``fitting``, or an
``experiments`` entry), :data:`DESIGN_SETTINGS` of
:class:`modelrecovery.design.static.DesignOptions` and
:class:`modelrecovery.design.adaptive.AdaptiveOptions` (config ``design``). The CLI builds
its flags from the lists (:func:`add_arguments`, :func:`add_design_arguments`), the
workflow's rules build their arguments from them (:func:`cli_flags`,
:func:`design_flags`), and the test suite holds the config schema and the dataclasses to
them. Standard library only: the rules and the argument parser of every command import
it, and neither may load torch.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

REGULARISERS: tuple[str, ...] = ("eye_distance", "l2", "l1")
#: How transformed features z = xW become a pair's similarity: z_i·z_j (dot), its cosine,
#: or −‖z_i − z_j‖ (euclidean); :func:`modelrecovery.oddoneout.similarity`.
SIMILARITIES: tuple[str, ...] = ("dot", "cosine", "euclidean")
FLOAT_DTYPES: tuple[str, ...] = ("float32", "float64")


@dataclass(frozen=True)
class Setting:
    """One user-facing fitting setting.

    ``key`` is the config key and the options field, ``kind`` its Python type,
    ``section`` where the config holds it (the ``fitting`` section, or the experiment's
    own entry, since an experiment is an alignment method under a regulariser; ``design``
    for every design's ranking, ``adaptive`` for the adaptive designs' own).
    ``nullable``: the value may be None (config ``null``, flag ``--no-<key>``).
    """

    key: str
    kind: type
    default: object
    help: str
    choices: tuple[str, ...] | None = None
    section: Literal["fitting", "experiment", "design", "adaptive", "mimic"] = "fitting"
    nullable: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    def arguments(self, value: object) -> list[str]:
        """The command-line arguments that set this setting to ``value``."""
        if value is None and self.nullable:
            return ["--no-" + self.flag[2:]]
        if self.kind is bool:
            return [self.flag if value else "--no-" + self.flag[2:]]
        if self.kind is float:
            return [self.flag, repr(float(value))]
        return [self.flag, str(value)]


SETTINGS: tuple[Setting, ...] = (
    Setting("regulariser", str, "eye_distance", "penalty on W", REGULARISERS, "experiment"),
    Setting("method", str, "full",
            "alignment method: zero_shot, diagonal, orthogonal, low_rank:K or full",
            section="experiment"),
    Setting("similarity", str, "dot",
            "pair similarity of the transformed features: dot, cosine or euclidean",
            SIMILARITIES, "experiment"),
    Setting("dtype", str, "float32", "floating-point type of the fit", FLOAT_DTYPES),
    Setting("device", str, "auto", "auto, cpu, cuda, cuda:1, ..."),
    Setting("allow_tf32", bool, False, "let CUDA matmuls use TF32 (faster, ~1e-3 relative)"),
    Setting("max_iter", int, 500, "L-BFGS iterations per fit at most"),
    Setting("history", int, 20, "L-BFGS curvature pairs kept"),
    Setting("grad_tol", float, 1e-6, "stop when the largest gradient entry is below this"),
    Setting("loss_tol", float, 1e-7,
            "stop when the objective's relative change per iteration is below this"),
    Setting("warm_start", bool, True,
            "solve the λ grid from the largest λ down, each from the last solution"),
    Setting("max_memory_gb", float, 8.0,
            "kernel working-memory limit in GiB; batches are split to fit it"),
)

# ``fitting.threads`` is the process's, not a FitOptions field: rules pass it as their
# own ``threads`` (Snakemake scales it), the CLI as ``--threads``.
PROCESS_KEYS: tuple[str, ...] = ("threads",)

FITTING_KEYS: tuple[str, ...] = tuple(s.key for s in SETTINGS if s.section == "fitting")

DESIGN_SETTINGS: tuple[Setting, ...] = (
    Setting("pool_factor", float, 20.0, "pool size as a multiple of the triplets to choose",
            section="design"),
    Setting("random_fraction", float, 0.1, "share of uniform triplets in every prefix",
            section="design"),
    Setting("object_cap", float, 3.0,
            "most uses of an object, relative to a uniform design (--no-object-cap: none)",
            section="design", nullable=True),
    Setting("posterior_floor", float, 0.1,
            "share of uniform weights mixed into the candidates' posterior",
            section="adaptive"),
    Setting("mimic_pool", int, 4000,
            "uniform triplets of a fold's training objects the mimics are fitted to",
            section="mimic"),
)


def _add(group: argparse._ArgumentGroup | argparse.ArgumentParser,
         settings: tuple[Setting, ...]) -> None:
    for s in settings:
        if s.kind is bool:
            group.add_argument(s.flag, dest=s.key, action=argparse.BooleanOptionalAction,
                               default=s.default, help=s.help)
            continue
        group.add_argument(s.flag, dest=s.key, type=s.kind, default=s.default,
                           choices=s.choices, help=s.help)
        if s.nullable:
            group.add_argument("--no-" + s.flag[2:], dest=s.key, action="store_const",
                               const=None, help=f"no {s.key.replace('_', ' ')}")


def add_arguments(group: argparse._ArgumentGroup | argparse.ArgumentParser) -> None:
    """Add one flag per fitting setting (and ``--lambdas``, ``--threads``) to ``group``."""
    group.add_argument("--lambdas", type=float, nargs="+", required=True,
                       help="the λ grid (the experiment's lambdas)")
    _add(group, SETTINGS)
    group.add_argument("--threads", type=int, default=1, help="torch's intra-op threads")


def add_design_arguments(group: argparse._ArgumentGroup | argparse.ArgumentParser,
                         section: Literal["design", "adaptive", "mimic"]) -> None:
    """Add one flag per design setting of ``section`` to ``group``."""
    _add(group, tuple(s for s in DESIGN_SETTINGS if s.section == section))


def option_values(args: argparse.Namespace) -> dict[str, object]:
    """The FitOptions keyword arguments a command's parsed flags give."""
    return {s.key: getattr(args, s.key) for s in SETTINGS}


def design_values(args: argparse.Namespace,
                  section: Literal["design", "adaptive", "mimic"]) -> dict[str, object]:
    """The keyword arguments of ``section``'s options dataclass from parsed flags."""
    return {s.key: getattr(args, s.key) for s in DESIGN_SETTINGS if s.section == section}


def cli_flags(fitting: Mapping, experiment: Mapping) -> list[str]:
    """The arguments a rule passes for these config sections, one item per argument:
    every setting (a key the section lacks takes its default) and the experiment's
    ``--lambdas``; not ``--threads``, which rules pass from their own ``threads``."""
    flags = ["--lambdas", *(repr(float(x)) for x in experiment["lambdas"])]
    for s in SETTINGS:
        section = experiment if s.section == "experiment" else fitting
        flags += s.arguments(section.get(s.key, s.default))
    return flags


def design_flags(design: Mapping, sections: tuple[str, ...] = ("design",)) -> list[str]:
    """The arguments a design rule passes for config section ``design`` (a key it lacks
    takes its default), one item per argument, for the settings of ``sections``."""
    flags: list[str] = []
    for s in DESIGN_SETTINGS:
        if s.section in sections:
            flags += s.arguments(design.get(s.key, s.default))
    return flags
