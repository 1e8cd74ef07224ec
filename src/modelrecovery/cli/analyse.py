"""``modelrecovery aggregate | analyse-geometry | analyse-identifiability |
compare-methods | analyse-parameters | analyse-ceiling`` (and ``analyse-properties``,
:mod:`.analyse_properties`): recovery rows into curves,
confusion matrices and the summary, why models are misidentified (and whether the data
or the metric is to blame), how methods and metrics compare, external benchmarks'
included, and how well the generators' transforms are recovered
(workflow/rules/analyse.smk), with :mod:`modelrecovery.analysis.aggregate`,
:mod:`modelrecovery.analysis.study`, :mod:`modelrecovery.analysis.identifiability`,
:mod:`modelrecovery.analysis.metrics`, :mod:`modelrecovery.analysis.parameters`,
:mod:`modelrecovery.analysis.oracle` and :mod:`modelrecovery.analysis.decision`.

Every table goes to the Parquet and CSV paths given by ``--out-parquet`` and
``--out-csv`` (NAME=PATH each), every figure to ``--out-png`` and ``--out-svg``.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd

from .. import io
from ..errors import InputError
from ..seeds import rng_for
from . import analyse_properties
from .analyse_properties import add_model_info, model_info
from .args import (add_figure_outputs, add_table_outputs, check_outputs, named_paths,
                   named_values, prior_weights, save_figures, write_tables)

log = logging.getLogger("modelrecovery")

AGGREGATE_TABLES = ["scores", "outcomes", "recovery_curve", "generator_curves",
                    "confusion", "summary", "alignment"]
GEOMETRY_TABLES = ["geometry", "rsa", "mds", "rsa_human"]
IDENTIFIABILITY_TABLES = ["ranks", "precision_recall", "misidentification"]
COMPARISON_TABLES = ["accuracy_vs_identifiability", "metrics_by_model", "metric_agreement",
                     "metric_correlations", "metric_agreement_summary", "aggregates",
                     "aggregate_variance", "aggregation_rankings", "metric_identifiability"]
COMPARISON_FIGURES = ["accuracy_vs_identifiability", "metric_agreement", "aggregate_variance"]


def cmd_aggregate(args: argparse.Namespace) -> None:
    from ..analysis import aggregate
    from ..recover import selection

    check_outputs(args, tables=AGGREGATE_TABLES)
    fits = io.read_tables(args.fits, aggregate.check_recovery_rows)
    scores = selection.candidate_scores(fits)
    outcomes = aggregate.dataset_outcomes(scores)
    curve = aggregate.recovery_curve(outcomes)
    gen = aggregate.generator_curves(outcomes)
    conf = aggregate.confusion(scores)
    summ = aggregate.summary(curve, fits)
    tables = {"scores": scores, "outcomes": outcomes, "recovery_curve": curve,
              "generator_curves": gen, "confusion": conf, "summary": summ,
              "alignment": aggregate.alignment_table(args.generators)}
    write_tables(args, tables)
    for _, r in summ.iterrows():
        log.info("N = %6d  recovery %.3f [%.3f, %.3f]  ties %.2f", r["n_train"],
                 r["recovery"], r["ci_low"], r["ci_high"], r["tie_rate"])


def cmd_analyse_geometry(args: argparse.Namespace) -> None:
    from ..analysis import geometry, plots, properties, study

    check_outputs(args, tables=GEOMETRY_TABLES, figures=["geometry"])
    info = model_info(args)
    n = len(io.read_objects(args.objects))
    paths = named_values(args.features, "--features")
    feats = {m: io.read_features(p, n) for m, p in paths.items()}
    weights, kinds = {}, {}
    for m, p in named_values(args.generators, "--generators").items():
        gen = io.read_generator(p, feats[m].shape[1] if m in feats else None)
        weights[m], kinds[m] = gen.weights, gen.similarity
        if not np.any(weights[m]):
            raise InputError(f"{p}: model {m!r}'s aligned transform is W = 0 (its fit to the "
                             "humans is no better than chance), so its aligned geometry is "
                             "undefined; leave it out of 'generators' or check its features")
    if args.metric == "correlation":
        for m, x in feats.items():
            for label, z in (("features", x), ("aligned features", x @ weights[m])):
                rows = geometry.constant_rows(z)
                if len(rows):
                    raise InputError(
                        f"{paths[m]}: model {m!r}: object row {int(rows[0])} has constant "
                        f"{label} ({len(rows)} such row(s)), so its correlation distance "
                        "is undefined; set config key 'analysis.metric' to euclidean")
    geom, rsa, mds = study.model_geometry(feats, weights, args.metric)
    human = study.human_similarity(io.read_triplets(args.human_train, n)[0], n)
    rsa_h = pd.DataFrame({"model": list(feats), "experiment": args.experiment,
                          "rsa_human": [study.rsa_with_humans(feats[m], weights[m],
                                                                       human, kinds[m])
                                        for m in feats]})
    write_tables(args, {"geometry": geom.assign(experiment=args.experiment),
                        "rsa": rsa.assign(experiment=args.experiment),
                        "mds": mds.assign(experiment=args.experiment), "rsa_human": rsa_h})
    save_figures(args, {"geometry": lambda: plots.mds_figure(
        mds, geom, f"Aligned geometry: {args.experiment}", properties.labels(info),
        properties.groups(info, "objective"))})


def cmd_analyse_identifiability(args: argparse.Namespace) -> None:
    from ..analysis import identifiability, plots, study

    check_outputs(args, tables=IDENTIFIABILITY_TABLES, figures=["misidentification"])
    outcomes = pd.read_parquet(args.outcomes)
    confusion = pd.read_parquet(args.confusion)
    geom = pd.read_parquet(args.geometry)
    rng = rng_for(args.study_seed, "misidentification", args.experiment)
    tables = {"ranks": identifiability.rank_table(outcomes),
              "precision_recall": identifiability.precision_recall_f1(confusion),
              "misidentification": study.misidentification(
                  outcomes, geom[["model", "geometry_shift", "pr_aligned"]], args.n_boot, rng)}
    write_tables(args, tables)
    save_figures(args, {"misidentification": lambda: plots.misidentification_figure(
        tables["misidentification"], f"Why models are misidentified: {args.experiment}")})


def cmd_compare_methods(args: argparse.Namespace) -> None:
    from ..analysis import identifiability, metrics, plots, study

    check_outputs(args, tables=COMPARISON_TABLES, figures=COMPARISON_FIGURES)

    def stack(paths: list[str], experiments: list[str]) -> pd.DataFrame:
        return pd.concat([pd.read_parquet(p).assign(experiment=e)
                          for p, e in zip(paths, experiments)], ignore_index=True)

    alignment = stack(args.alignment, args.experiments)
    curves = pd.concat([pd.read_parquet(p) for p in args.curves], ignore_index=True)
    gen_curves = pd.concat([pd.read_parquet(p) for p in args.generator_curves],
                           ignore_index=True)
    rsa_h = pd.concat([pd.read_parquet(p) for p in args.rsa_human], ignore_index=True)
    external = (io.open_parquet(args.external, "external scores").to_pandas()
                if args.external else None)
    tradeoff = identifiability.accuracy_vs_identifiability(alignment, curves)
    table, groups = study.with_external(
        study.metric_table(alignment, gen_curves, rsa_h), external)
    metric_names = [c for c in table.columns if c != "model"]
    _, rho = identifiability.metric_agreement(table, metric_names, model="model")
    chosen = _aggregated(args.aggregate, metric_names, groups, external)
    rng = rng_for(args.study_seed, "metric_agreement")
    correlations = metrics.agreement(table, metric_names, args.n_boot, rng)
    scopes = {"all metrics": metric_names, "aggregated": chosen}
    if external is not None and len(external):
        scopes["external"] = list(dict.fromkeys(external["metric"]))
    summary = pd.DataFrame([{"scope": scope, **metrics.mean_off_diagonal(
        table, names, args.n_boot, rng, method=method)}
        for scope, names in scopes.items() for method in metrics.CORRELATIONS])
    variance = pd.concat([metrics.explained_variance(table, chosen, groups, how)
                          for how in metrics.AGGREGATIONS], ignore_index=True)
    write_tables(args, {
        "accuracy_vs_identifiability": tradeoff, "metrics_by_model": table,
        "metric_agreement": rho.reset_index(), "metric_correlations": correlations,
        "metric_agreement_summary": summary,
        "aggregates": metrics.aggregates(table, chosen),
        "aggregate_variance": variance,
        "aggregation_rankings": metrics.ranking_changes(table, chosen),
        "metric_identifiability": study.metric_identifiability(alignment,
                                                                        gen_curves)})
    save_figures(args, {"accuracy_vs_identifiability": lambda: plots.tradeoff_figure(tradeoff),
                        "metric_agreement": lambda: plots.agreement_figure(rho, groups),
                        "aggregate_variance": lambda: plots.variance_figure(variance)})


def _aggregated(names: list[str], metrics: list[str], groups: dict[str, str],
                external: pd.DataFrame | None) -> list[str]:
    """The metrics the aggregates average: ``names`` (groups or metrics), or every
    external score, or without any the study's accuracy and RSA metrics."""
    from ..analysis.study import DEFAULT_STUDY_AGGREGATE

    if not names:
        names = (list(dict.fromkeys(external["group"])) if external is not None
                 and len(external) else list(DEFAULT_STUDY_AGGREGATE))
    chosen = []
    for name in names:
        members = [m for m in metrics if groups.get(m) == name] or (
            [name] if name in metrics else [])
        if not members:
            raise InputError(f"external_scores.aggregate: {name!r} is neither a group "
                             f"({sorted(set(groups.values()))}) nor a metric {metrics}")
        chosen += [m for m in members if m not in chosen]
    if len(chosen) < 2:
        raise InputError(f"external_scores.aggregate: an aggregate needs at least two "
                         f"metrics, found {chosen}")
    return chosen


PARAMETER_TABLES = ["parameter_recovery"]


def _check_parameter_rows(frame: pd.DataFrame, source: object) -> None:
    missing = [c for c in io.PARAMETER_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{source}: parameter table lacks column(s) {missing}")


def cmd_analyse_parameters(args: argparse.Namespace) -> None:
    from ..analysis import parameters, plots, properties

    check_outputs(args, tables=PARAMETER_TABLES, figures=["parameter_recovery"])
    labels = properties.labels(model_info(args))
    rows = io.read_tables(args.rows, _check_parameter_rows)
    curves = parameters.parameter_curves(rows)
    recovery = pd.read_parquet(args.generator_curves)
    random = curves[curves["design"] == "random"]
    write_tables(args, {"parameter_recovery": curves})
    save_figures(args, {"parameter_recovery": lambda: plots.parameter_figure(
        random, recovery, f"Parameter recovery: {args.experiment} (random design)",
        labels)})


CEILING_TABLES = ["identifiability_ceiling", "decision_rules", "inversion", "decomposition"]
CEILING_FIGURES = ["identifiability_ceiling", "inversion"]


def cmd_analyse_ceiling(args: argparse.Namespace) -> None:
    """The identifiability ceiling of every simulated dataset (the generators' own
    likelihoods of its responses at each training size) beside the best fit's recovery
    per design, and the split of the best fit's failures into data and metric."""
    from ..analysis import aggregate, decision, designs, oracle, plots, properties

    check_outputs(args, tables=CEILING_TABLES, figures=CEILING_FIGURES)
    labels = properties.labels(model_info(args))
    if not len(args.shard) == len(args.design) == len(args.generator) == len(args.seed):
        raise InputError(f"--shard, --design, --generator and --seed need one entry per "
                         f"dataset; got {len(args.shard)}, {len(args.design)}, "
                         f"{len(args.generator)} and {len(args.seed)}")
    if not args.rule_l2 > 0:
        raise InputError(f"--rule-l2: the learned rule's penalty must be > 0, got "
                         f"{args.rule_l2}")
    n = len(io.read_objects(args.objects))
    generators = named_values(args.generators, "--generators")
    prior = prior_weights(sorted(generators), args.prior)
    features = named_paths(args.features, "--features", list(generators))
    instances: dict[str, list[str]] = {}
    for item in args.instances:
        name, _, path = item.partition("=")
        if name not in generators or not path:
            raise InputError(f"--instances: {item!r} is not NAME=NPZ with NAME one of "
                             f"{sorted(generators)}")
        instances.setdefault(name, []).append(path)
    sims, temperatures = {}, {}
    for name, path in generators.items():
        x = io.read_features(features[name], n)
        sims[name], temperatures[name] = [], []
        for p in [path, *instances.get(name, [])]:
            generator = io.read_generator(p, x.shape[1])
            temperature = generator.temperature
            sims[name].append(generator.similarities(x))
            temperatures[name].append(temperature)
    unknown = sorted(set(args.generator) - set(generators))
    if unknown:
        raise InputError(f"--generator: {unknown} have no --generators entry")
    rows = []
    for path, design, generator, seed in zip(args.shard, args.design, args.generator,
                                             args.seed):
        shard = io.read_shard(path)
        for n_train in args.sizes:
            triplets = oracle.dataset_triplets(shard, n_train, args.eval_fraction)
            for scorer, loglik in oracle.log_likelihoods(triplets, sims,
                                                         temperatures).items():
                rows.append({"experiment": args.experiment, "design": design,
                             "generator": generator, "n_train": n_train, "seed": seed,
                             "scorer": scorer, "loglik": loglik})
    verdicts = {"oracle": oracle.oracle_outcomes(pd.DataFrame(rows))}
    curve = oracle.oracle_curve(verdicts["oracle"])
    fits = io.read_tables(args.fits, aggregate.check_recovery_rows)
    scores = designs.design_scores(fits)
    best_outcomes = designs.design_outcomes(fits, scores)
    best = designs.design_curves(best_outcomes)
    verdicts["best_fit"] = best_outcomes
    verdicts["best_fit_nll"] = best_outcomes.assign(
        winner=best_outcomes["nll_winner"], credit=best_outcomes["nll_credit"],
        tie=best_outcomes["nll_winner"].str.contains("|", regex=False))
    verdicts["learned"] = decision.learned_outcomes(scores, args.rule_l2)
    if verdicts["learned"].empty:
        log.warning("the learned rule needs at least two seeds per design and size (it is "
                    "scored on seeds it was not trained on); it is left out")
    rules = decision.rule_curves(verdicts)
    learned = rules.loc[rules["rule"] == "learned", ["experiment", "design", "n_train",
                                                       "recovery"]]
    table = (oracle.decomposition(curve, best)
             .merge(best[["experiment", "design", "n_train", "nll_recovery"]].rename(
                 columns={"nll_recovery": "recovery_best_fit_nll"}),
                 on=["experiment", "design", "n_train"])
             .merge(learned.rename(columns={"recovery": "recovery_learned"}), how="left",
                    on=["experiment", "design", "n_train"]))
    inversion = decision.inversion(verdicts, dict(zip(sorted(generators), prior)))
    write_tables(args, {"identifiability_ceiling": curve, "decision_rules": rules,
                        "inversion": inversion, "decomposition": table})
    save_figures(args, {
        "identifiability_ceiling": lambda: plots.ceiling_figure(
            curve, best, rules[rules["rule"] == "learned"],
            f"Data or metric? {args.experiment}"),
        "inversion": lambda: plots.inversion_figure(
            inversion, f"What to believe when a model wins: {args.experiment}", labels)})
    for _, r in table.iterrows():
        log.info("%s N = %6d  oracle %.3f  learned %.3f  best fit %.3f  metric share %.3f",
                 r["design"], r["n_train"], r["recovery_oracle"], r["recovery_learned"],
                 r["recovery_best_fit"], r["metric_share"])


def register(sub: argparse._SubParsersAction) -> None:
    """Add the analysis subcommands (``analyse-parameters``, ``analyse-ceiling`` and
    :mod:`.analyse_properties`' ``analyse-properties`` included) to the main parser."""
    p = sub.add_parser("aggregate", help="recovery curves, confusion matrices, summary")
    p.add_argument("--fits", nargs="+", required=True)
    p.add_argument("--generators", nargs="*", default=[], help="generator JSON sidecars")
    add_table_outputs(p, AGGREGATE_TABLES)
    p.set_defaults(func=cmd_aggregate)

    p = sub.add_parser("analyse-geometry", help="geometry shift, dimensionality, RSA, MDS")
    for name in ("objects", "human_train", "experiment"):
        p.add_argument("--" + name.replace("_", "-"), required=True)
    p.add_argument("--features", nargs="+", required=True, metavar="NAME=PATH")
    p.add_argument("--generators", nargs="+", required=True, metavar="NAME=NPZ")
    p.add_argument("--metric", default="correlation", choices=["correlation", "euclidean"])
    add_model_info(p)
    add_table_outputs(p, GEOMETRY_TABLES)
    add_figure_outputs(p, ["geometry"])
    p.set_defaults(func=cmd_analyse_geometry)

    p = sub.add_parser("analyse-identifiability",
                       help="ranks, precision/recall/F1, misidentification regression")
    for name in ("outcomes", "confusion", "geometry", "experiment"):
        p.add_argument("--" + name.replace("_", "-"), required=True)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--study-seed", type=int, required=True)
    add_table_outputs(p, IDENTIFIABILITY_TABLES)
    add_figure_outputs(p, ["misidentification"])
    p.set_defaults(func=cmd_analyse_identifiability)

    p = sub.add_parser("compare-methods",
                       help="accuracy vs identifiability and metric agreement across runs")
    for name in ("experiments", "alignment", "curves", "generator_curves", "rsa_human"):
        p.add_argument("--" + name.replace("_", "-"), nargs="+", required=True)
    p.add_argument("--external", help="external scores (import-scores' Parquet)")
    p.add_argument("--aggregate", nargs="*", default=[],
                   help="groups or metrics the aggregates average")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--study-seed", type=int, required=True)
    add_table_outputs(p, COMPARISON_TABLES)
    add_figure_outputs(p, COMPARISON_FIGURES)
    p.set_defaults(func=cmd_compare_methods)

    p = sub.add_parser("analyse-parameters",
                       help="parameter recovery: refitted against generating transforms")
    p.add_argument("--rows", nargs="+", required=True, help="parameter rows per dataset")
    p.add_argument("--generator-curves", required=True)
    p.add_argument("--experiment", required=True)
    add_model_info(p)
    add_table_outputs(p, PARAMETER_TABLES)
    add_figure_outputs(p, ["parameter_recovery"])
    p.set_defaults(func=cmd_analyse_parameters)

    p = sub.add_parser("analyse-ceiling",
                       help="the identifiability ceiling: data-limited vs metric-limited")
    p.add_argument("--objects", required=True)
    p.add_argument("--experiment", required=True)
    p.add_argument("--features", nargs="+", required=True, metavar="NAME=PATH",
                   help="each generator's features")
    p.add_argument("--generators", nargs="+", required=True, metavar="NAME=NPZ",
                   help="each calibrated generator's W and T")
    p.add_argument("--instances", nargs="*", default=[], metavar="NAME=NPZ",
                   help="further instances of a generator (a name may repeat); each "
                        "dataset is scored under every generator's mixture of instances")
    p.add_argument("--shard", nargs="+", required=True, help="simulated datasets")
    p.add_argument("--design", nargs="+", required=True, help="one per --shard")
    p.add_argument("--generator", nargs="+", required=True, help="one per --shard")
    p.add_argument("--seed", type=int, nargs="+", required=True, help="one per --shard")
    p.add_argument("--sizes", type=int, nargs="+", required=True,
                   help="training triplets per fold")
    p.add_argument("--eval-fraction", type=float, default=0.125)
    p.add_argument("--fits", nargs="+", required=True,
                   help="the recovery rows of the same datasets (the best fit)")
    p.add_argument("--prior", nargs="*", default=[], metavar="NAME=WEIGHT",
                   help="prior over the generators for the inversion matrix (uniform)")
    p.add_argument("--rule-l2", type=float, default=1.0,
                   help="the learned rule's penalty on what it learns beyond the best fit")
    add_model_info(p)
    add_table_outputs(p, CEILING_TABLES)
    add_figure_outputs(p, CEILING_FIGURES)
    p.set_defaults(func=cmd_analyse_ceiling)
    analyse_properties.register(sub)
