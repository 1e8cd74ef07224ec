# Shared helpers: the config's checks, paths, wildcard constraints, input functions and
# CLI argument strings. Included first: every refusal of the config happens here.
import importlib.util
import json
import math
import os
import sys

from snakemake.utils import validate


def load_workflow_module(name, rel_path):
    """A pure-Python helper file of this workflow, loaded by path through
    ``workflow.source_path``: it resolves inside a module (snakedeploy, ``module:``) and
    from a remote source as well as in a checkout, and needs neither the package nor a
    ``sys.path`` entry in the process that runs Snakemake (e.g. under ``--sdm conda``)."""
    # source_path gives Snakemake's annotated string; as a module's file name it would
    # reach the bytecode cache, which marshal cannot write, so it goes in as a plain str.
    path = str(workflow.source_path(rel_path))
    spec = importlib.util.spec_from_file_location(name, path)
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded  # dataclasses resolve their module by name
    spec.loader.exec_module(loaded)
    return loaded


# Every refusal of the config is one line naming the key, before any job runs; validate
# then fills the schema's defaults.
config_checks = load_workflow_module("modelrecovery_config_checks", "../lib/config_checks.py")
# The rules build the fitting and design flags from the package's lists of settings (standard
# library only), read from the package's source file rather than an installed copy.
settings = load_workflow_module("modelrecovery_settings", "../../src/modelrecovery/settings.py")

config_checks.refuse_bad_config(
    config, workflow.source_path("../schemas/config.schema.yaml"), workflow.configfiles
)
validate(config, "../schemas/config.schema.yaml")


RESULTS = config.get("results", "results")
WORLD = f"{RESULTS}/world"
SOURCE = config["world"]["source"]
MODELS = config_checks.model_names(config)
EXPERIMENTS = list(config["experiments"])
SIZES = sorted(int(n) for n in config["simulation"]["training_sizes"])
SEEDS = list(range(int(config["simulation"]["seeds"])))
GENERATORS = config.get("generators") or MODELS
CANDIDATES = config.get("candidates") or MODELS
DESIGNS = config["designs"]
DESIGN = config["design"]
EXTERNAL = config.get("external_scores") or {}
# The published study's results database (published_results); None: no comparison.
PUBLISHED = config.get("published_results")
# Simulated score groups by name: params are canonical, so reordering the YAML's keys
# reruns nothing.
SYNTHETIC_SCORES = dict(sorted((EXTERNAL.get("synthetic") or {}).items()))
# Every external scores file and its group: the user's, then the simulated ones.
SCORE_FILES = [(f["path"], f["group"]) for f in EXTERNAL.get("files") or []] + [
    (f"{WORLD}/external/{group}.csv", group) for group in SYNTHETIC_SCORES
]


wildcard_constraints:
    design=r"random|static|adaptive|mimic",
    experiment=r"[A-Za-z0-9_\-]+",
    model=r"[A-Za-z0-9_\-.]+",
    generator=r"[A-Za-z0-9_\-.]+",
    instance=r"[1-9][0-9]*",
    n=r"\d+",
    seed=r"\d+",


def gpu_request(gpu):
    """The GPU request of the torch rules, from config key ``gpu``: ``gpu`` (the count; 0
    on a cluster without GPUs) and, when the config names one, ``gpu_model``. The SLURM
    plugin turns them into ``sbatch --gpus=[model:]count``. They are the rules' own
    resources, so no ``--set-resources`` of another resource removes them."""
    count = int(gpu.get("count", 1))
    request = {"gpu": count}
    if count and gpu.get("model"):
        request["gpu_model"] = gpu["model"]
    return request


GPU_REQUEST = gpu_request(config.get("gpu") or {})

# A fitting job's memory: the kernel's budget (fitting.max_memory_gb: it fits and scores
# its problems in chunks that stay within it) and 1 GiB for the process, its features
# and shards. A request below the budget lets SLURM kill a job the kernel kept in bounds.
FIT_MEM_MB = math.ceil(config["fitting"]["max_memory_gb"] * 1024) + 1024


def exp_path(*parts):
    return os.path.join(RESULTS, "{experiment}", *parts)


def scaled(base):
    """A resource of ``base`` units on the first attempt, growing with each retry (a
    job resubmitted by --retries asks for twice as much, then three times, ...)."""
    return lambda wildcards, attempt: base * attempt


def out_flags(kind):
    """NAME=PATH for every output named ``<NAME>_<kind>`` (from :func:`table_outputs`
    and :func:`figure_outputs`): the CLI's ``--out-<kind>`` arguments."""
    suffix = f"_{kind}"

    def flags(wildcards, output):
        return [
            f"{name[: -len(suffix)]}={path}"
            for name, path in output.items()
            if name.endswith(suffix)
        ]

    return flags


def log_path(stage, name):
    return f"logs/{{experiment}}/{stage}/{name}.log"


def bench_path(stage, name):
    return f"logs/benchmarks/{{experiment}}/{stage}/{name}.tsv"


def features_path(model):
    return f"{WORLD}/features/{model}.parquet"


def fit_args(experiment):
    """The fitting flags every torch rule passes to the CLI, one argument per item (the
    rules quote each with ``:q``), from the one list of settings the CLI is built from."""
    return settings.cli_flags(config["fitting"], config["experiments"][experiment])


def get_preprocess_flags(wildcards):
    """import-features flags from world.things.features.<model> (format, preprocessing)."""
    spec = config["world"]["things"]["features"][wildcards.model]
    flags = ["--format", spec.get("format", "auto")]
    if spec.get("center"):
        flags.append("--center")
    if spec.get("unit_norm"):
        flags.append("--unit-norm")
    if spec.get("pca"):
        flags += ["--pca", str(int(spec["pca"]))]
    return flags


def get_fit_args(wildcards):
    return fit_args(wildcards.experiment)


def named_paths(names, paths):
    """NAME=PATH arguments, one per model (each quoted by the rule's ``:q``)."""
    return [f"{name}={path}" for name, path in zip(names, paths)]


def get_feature_outputs(wildcards, output):
    """--out-features NAME=PATH, one per model."""
    return named_paths(MODELS, output.features)


def get_candidate_args(wildcards, input):
    return named_paths(CANDIDATES, input.candidates)


def get_calibration_target(wildcards, input):
    """The noise ceiling: the config's number, or the imported ceiling.json for 'auto'."""
    if config["noise_ceiling"] == "auto":
        return input.ceiling
    return config["noise_ceiling"]


def recovery_rows(experiment, designs, kind="recovery"):
    return expand(
        exp_path(kind, "{design}", "{generator}", "n{n}", "seed{seed}.parquet"),
        experiment=experiment,
        design=designs,
        generator=GENERATORS,
        n=SIZES,
        seed=SEEDS,
    )


def get_recovery_rows(wildcards):
    """The random design's rows: the study's protocol, which the analyses describe."""
    return recovery_rows(wildcards.experiment, ["random"])


def get_design_rows(wildcards):
    return recovery_rows(wildcards.experiment, DESIGNS)


def simulated_datasets(experiment):
    """(design, generator, seed, shard path) of every simulated dataset of an experiment,
    in one order for the paths and their labels."""
    return [
        (d, g, s, os.path.join(RESULTS, experiment, "simulated", d, g, f"seed{s}.parquet"))
        for d in DESIGNS
        for g in GENERATORS
        for s in SEEDS
    ]


def get_simulated_shards(wildcards):
    return [path for *_, path in simulated_datasets(wildcards.experiment)]


def get_dataset_labels(wildcards):
    """--design, --generator and --seed, one entry per shard of get_simulated_shards."""
    datasets = simulated_datasets(wildcards.experiment)
    return [
        "--design",
        *(d for d, *_ in datasets),
        "--generator",
        *(g for _, g, *_ in datasets),
        "--seed",
        *(str(s) for *_, s, _ in datasets),
    ]


def get_parameter_rows(wildcards):
    """Every design's parameter-recovery rows (the generator's own refits)."""
    return recovery_rows(wildcards.experiment, DESIGNS, "parameters")


INSTANCES = int(config["simulation"]["generator_instances"])
# Experiments whose generators come from another experiment (experiments.<name>.
# generators_from): their generators/ folder holds copies of the source's, so every
# rule downstream reads an experiment's generators from its own folder.
BORROWED = {
    name: spec["generators_from"]
    for name, spec in config["experiments"].items()
    if spec.get("generators_from")
}


def experiment_pattern(names):
    """A wildcard constraint matching exactly these experiment names (none: nothing)."""
    return "|".join(names) if names else "(?!)"


ALIGNING = experiment_pattern([e for e in EXPERIMENTS if e not in BORROWED])
BORROWING = experiment_pattern(list(BORROWED))


def get_borrowed_generator(wildcards):
    """The source experiment's calibrated generator (or instance) this experiment uses."""
    source = os.path.join(RESULTS, BORROWED[wildcards.experiment], "generators")
    if getattr(wildcards, "instance", None):
        source = os.path.join(source, "instances", wildcards.model)
        stem = f"i{wildcards.instance}"
    else:
        stem = wildcards.model
    return {kind: os.path.join(source, f"{stem}.{kind}") for kind in ("npz", "json")}


def generator_file(generator, seed):
    """The generator a seed's datasets come from: instance seed mod k of
    simulation.generator_instances (0 is the aligned generator itself)."""
    instance = int(seed) % INSTANCES
    if instance == 0:
        return exp_path("generators", f"{generator}.npz")
    return exp_path("generators", "instances", generator, f"i{instance}.npz")


def get_generator_file(wildcards):
    return generator_file(wildcards.generator, wildcards.seed)


def get_generator_instances(wildcards):
    """Every generator's further instances (none with one instance per generator)."""
    return [
        generator_file(g, i).format(experiment=wildcards.experiment)
        for g in GENERATORS
        for i in range(1, INSTANCES)
    ]


def get_instance_args(wildcards, input):
    """--instances NAME=NPZ ... for every further instance (none: no flag)."""
    if not input.instances:
        return []
    names = [g for g in GENERATORS for _ in range(1, INSTANCES)]
    return ["--instances", *named_paths(names, input.instances)]


def get_generator_sidecars(wildcards):
    return expand(
        exp_path("generators", "{model}.json"),
        experiment=wildcards.experiment,
        model=GENERATORS,
    )


ANALYSIS = config["analysis"]
# Model metadata (config key model_info) for the commands that draw or describe models:
# labels, objective and architecture, parameter count, embedding size.
MODEL_INFO = config.get("model_info") or {}
MODEL_INFO_FLAGS = ["--model-info", json.dumps(MODEL_INFO, sort_keys=True)] if MODEL_INFO else []


# Tables of a row per simulated dataset (and candidate): 216,000 score rows at the
# published study's shape. They stay in results/; the report, whose size must not grow
# with the number of jobs, carries the tables summarising them.
PER_DATASET_TABLES = {"scores", "outcomes"}


def table_outputs(names, experiment="{experiment}"):
    """Parquet + CSV outputs named <table>_<ext>, per experiment or for the comparison;
    the CSVs but those of PER_DATASET_TABLES go into the report with the caption
    workflow/report/<table>.rst."""
    base = exp_path("tables") if experiment else f"{RESULTS}/comparison/tables"
    category = "{experiment}" if experiment else "Across experiments"
    out = {}
    for name in names:
        out[f"{name}_parquet"] = f"{base}/{name}.parquet"
        csv = f"{base}/{name}.csv"
        out[f"{name}_csv"] = (
            csv
            if name in PER_DATASET_TABLES
            else report(
                csv,
                caption=f"../report/{name}.rst",
                category=category,
                subcategory="Tables",
            )
        )
    return out


def figure_outputs(captions, subcategory=None, experiment="{experiment}"):
    """PNG + SVG outputs named <figure>_png and <figure>_svg, per experiment or for the
    comparison; ``captions`` maps each figure to its caption, workflow/report/<caption>.rst,
    with which the PNG goes into the report."""
    base = exp_path("figures") if experiment else f"{RESULTS}/comparison/figures"
    category = "{experiment}" if experiment else "Across experiments"
    out = {}
    for name, caption in captions.items():
        out[f"{name}_png"] = report(
            f"{base}/{name}.png",
            caption=f"../report/{caption}.rst",
            category=category,
            subcategory=subcategory,
        )
        out[f"{name}_svg"] = f"{base}/{name}.svg"
    return out


def get_final_output():
    designed = [
        exp_path("figures", "design_curves.png"),
        *(exp_path("design", d, "triplets.csv") for d in DESIGNS),
        # A target of its own: Snakemake reruns a job for a missing output only when that
        # output is requested, so a results folder whose triplets.csv exists gets the
        # summary too, and the report, which embeds it, finds it.
        *(exp_path("design", d, "triplets_summary.csv") for d in DESIGNS),
        *([exp_path("tables", "mimic_divergence.csv")] if "mimic" in DESIGNS else []),
    ]
    return expand(
        [
            exp_path("tables", "summary.csv"),
            exp_path("figures", "recovery_curve.png"),
            exp_path("figures", "confusion.png"),
            exp_path("figures", "geometry.png"),
            exp_path("figures", "misidentification.png"),
            exp_path("figures", "parameter_recovery.png"),
            exp_path("figures", "identifiability_ceiling.png"),
            exp_path("tables", "properties_regression.csv"),
            exp_path("tables", "recovery_auc.csv"),
            *(designed if len(DESIGNS) > 1 else []),
        ],
        experiment=EXPERIMENTS,
    ) + [
        f"{RESULTS}/comparison/figures/accuracy_vs_identifiability.png",
        f"{RESULTS}/comparison/figures/metric_agreement.png",
        *([f"{RESULTS}/comparison/figures/published_comparison.png"] if PUBLISHED else []),
        f"{RESULTS}/comparison/tables/regulariser_equivalence.csv",
    ]


def get_external_scores(wildcards):
    """The validated external scores, when the config has any."""
    return [f"{WORLD}/external_scores.parquet"] if SCORE_FILES else []


def get_human_exclusions(wildcards):
    """The human triplet files never to draw (simulation.exclude_human_triplets)."""
    if config["simulation"]["exclude_human_triplets"]:
        return [f"{WORLD}/human/train.parquet", f"{WORLD}/human/test.parquet"]
    return []


def get_design_files(wildcards):
    """The triplets a designed dataset answers: its seed's static or mimic design (none
    for random, which draws its own)."""
    if wildcards.design in ("static", "mimic"):
        return [exp_path("design", wildcards.design, "seed{seed}.parquet")]
    return []


# The ranking options of every design command, and with the adaptive and mimic designs'
# own, from config key `design` by the package's one list of design settings.
DESIGN_FLAGS = settings.design_flags(DESIGN)
ADAPTIVE_FLAGS = settings.design_flags(DESIGN, ("design", "adaptive"))
MIMIC_FLAGS = settings.design_flags(DESIGN, ("design", "mimic"))


def get_criterion_args(wildcards, input):
    """--prior NAME=WEIGHT ... or --pair A B (the named pair, or the pair the random
    design confuses most, read from its confusion table)."""
    pair = DESIGN.get("pair")
    if pair == "most_confused":
        return ["--pair-from-confusion", input.confusion]
    if pair:
        return ["--pair", *pair]
    return prior_flags(DESIGN)


def prior_flags(section):
    """--prior NAME=WEIGHT ... from a config section's ``prior`` (none: uniform)."""
    prior = section.get("prior")
    if prior:
        return ["--prior", *(f"{m}={float(w)!r}" for m, w in sorted(prior.items()))]
    return []


def get_confusion_input(wildcards):
    if DESIGN.get("pair") == "most_confused":
        return exp_path("tables", "confusion.parquet")
    return []


def get_export_source(wildcards):
    """What a design's triplets.csv comes from: seed 0's design (adaptive: its first
    round, the static design's first rows; later rounds come from `design next`)."""
    source = "static" if wildcards.design == "adaptive" else wildcards.design
    return {
        "design": exp_path("design", source, "seed0.parquet"),
        "meta": exp_path("design", source, "seed0.json"),
    }


def get_recovery_shards(wildcards):
    """Every design's simulated dataset of one generator and seed, in the order of the
    recover rule's outputs."""
    return [
        exp_path("simulated", d, wildcards.generator, f"seed{wildcards.seed}.parquet")
        for d in DESIGNS
    ]
