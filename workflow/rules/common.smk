# Shared helpers: paths, wildcard constraints, input functions and CLI argument strings.
import json
import os


RESULTS = config.get("results", "results")
WORLD = f"{RESULTS}/world"
SOURCE = config["world"]["source"]
if SOURCE == "synthetic":
    MODELS = [m["name"] for m in config["world"]["synthetic"]["models"]]
else:
    MODELS = list(config["world"][SOURCE]["features"])
if config["noise_ceiling"] == "auto" and SOURCE != "things":
    raise ValueError(
        "config key 'noise_ceiling': 'auto' needs world.source: things (the ceiling is "
        "computed from THINGS' repeated test triplets); give a number instead"
    )
EXPERIMENTS = list(config["experiments"])
SIZES = sorted(int(n) for n in config["simulation"]["training_sizes"])
SEEDS = list(range(int(config["simulation"]["seeds"])))
GENERATORS = config.get("generators") or MODELS
CANDIDATES = config.get("candidates") or MODELS
for _key, _names in (("generators", GENERATORS), ("candidates", CANDIDATES)):
    if set(_names) - set(MODELS):
        raise ValueError(
            f"config key '{_key}': unknown model(s) {sorted(set(_names) - set(MODELS))}; "
            f"the world has {MODELS}"
        )
if set(GENERATORS) - set(CANDIDATES):
    raise ValueError(
        "config: every generator must also be a candidate, or recovery is undefined; "
        f"missing from 'candidates': {sorted(set(GENERATORS) - set(CANDIDATES))}"
    )


wildcard_constraints:
    experiment=r"[A-Za-z0-9_\-]+",
    model=r"[A-Za-z0-9_\-.]+",
    generator=r"[A-Za-z0-9_\-.]+",
    n=r"\d+",
    seed=r"\d+",


def exp_path(*parts):
    return os.path.join(RESULTS, "{experiment}", *parts)


def output_dir(key):
    """A param giving the folder of output ``key`` (for CLIs that take an --out-dir)."""

    def folder(wildcards, output):
        value = output[key]
        return os.path.dirname(value if isinstance(value, str) else value[0])

    return folder


def log_path(stage, name):
    return f"logs/{{experiment}}/{stage}/{name}.log"


def bench_path(stage, name):
    return f"logs/benchmarks/{{experiment}}/{stage}/{name}.tsv"


def features_path(model):
    return f"{WORLD}/features/{model}.parquet"


def fit_args(experiment):
    """The fitting flags every torch rule passes to the CLI."""
    exp, fit = config["experiments"][experiment], config["fitting"]
    lambdas = " ".join(repr(float(x)) for x in exp["lambdas"])
    flags = [
        f"--regulariser {exp['regulariser']}",
        f"--method {exp['method']}",
        f"--lambdas {lambdas}",
        f"--dtype {fit['dtype']}",
        f"--device {fit['device']}",
        f"--max-iter {fit['max_iter']}",
        f"--history {fit['history']}",
        f"--grad-tol {fit['grad_tol']}",
        f"--loss-tol {fit['loss_tol']}",
        f"--max-memory-gb {fit['max_memory_gb']}",
        "--warm-start" if fit["warm_start"] else "--no-warm-start",
    ]
    if fit.get("allow_tf32"):
        flags.append("--allow-tf32")
    return " ".join(flags)


def get_preprocess_flags(wildcards):
    """import-features flags from world.things.features.<model> (format, preprocessing)."""
    spec = config["world"]["things"]["features"][wildcards.model]
    flags = [f"--format {spec.get('format', 'auto')}"]
    if spec.get("center"):
        flags.append("--center")
    if spec.get("unit_norm"):
        flags.append("--unit-norm")
    if spec.get("pca"):
        flags.append(f"--pca {int(spec['pca'])}")
    return " ".join(flags)


def get_fit_args(wildcards):
    return fit_args(wildcards.experiment)


def get_candidate_args(wildcards, input):
    return " ".join(f"{name}={path}" for name, path in zip(CANDIDATES, input.candidates))


def get_calibration_target(wildcards, input):
    """The noise ceiling: the config's number, or the imported ceiling.json for 'auto'."""
    if config["noise_ceiling"] == "auto":
        return input.ceiling
    return config["noise_ceiling"]


def get_recovery_rows(wildcards):
    return expand(
        exp_path("recovery", "{generator}", "n{n}", "seed{seed}.parquet"),
        experiment=wildcards.experiment,
        generator=GENERATORS,
        n=SIZES,
        seed=SEEDS,
    )


def get_generator_sidecars(wildcards):
    return expand(
        exp_path("generators", "{model}.json"),
        experiment=wildcards.experiment,
        model=GENERATORS,
    )


ANALYSIS = config.get("analysis", {})


def table_outputs(names, experiment="{experiment}"):
    """Parquet + CSV outputs named <table>_<ext>, per experiment or for the comparison;
    the CSVs go into the report with the caption workflow/report/<table>.rst."""
    base = exp_path("tables") if experiment else f"{RESULTS}/comparison/tables"
    category = "{experiment}" if experiment else "Across experiments"
    out = {}
    for name in names:
        out[f"{name}_parquet"] = f"{base}/{name}.parquet"
        out[f"{name}_csv"] = report(
            f"{base}/{name}.csv",
            caption=f"../report/{name}.rst",
            category=category,
            subcategory="Tables",
        )
    return out


def get_final_output():
    return expand(
        [
            exp_path("tables", "summary.csv"),
            exp_path("figures", "recovery_curve.png"),
            exp_path("figures", "confusion.png"),
            exp_path("figures", "geometry.png"),
            exp_path("figures", "misidentification.png"),
        ],
        experiment=EXPERIMENTS,
    ) + [
        f"{RESULTS}/comparison/figures/accuracy_vs_identifiability.png",
        f"{RESULTS}/comparison/figures/metric_agreement.png",
    ]
