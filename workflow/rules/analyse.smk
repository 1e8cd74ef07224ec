# Stage 5: aggregate recovery rows into curves, confusion matrices and the summary.
# Commands: src/modelrecovery/cli/analyse.py, src/modelrecovery/cli/analyse_properties.py;
# the work: src/modelrecovery/analysis/ (aggregate.py, study.py, geometry.py,
# identifiability.py, properties.py, pvalues.py, metrics.py, parameters.py, oracle.py,
# decision.py, stats.py).

TABLES = [
    "scores",
    "outcomes",
    "recovery_curve",
    "generator_curves",
    "confusion",
    "summary",
    "alignment",
]


rule aggregate:
    input:
        fits=get_recovery_rows,
        generators=get_generator_sidecars,
    output:
        **table_outputs(TABLES),
    log:
        log_path("aggregate", "aggregate"),
    benchmark:
        bench_path("aggregate", "aggregate")
    conda:
        "../../envs/modelrecovery.yaml"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(20),
    params:
        parquet=out_flags("parquet"),
        csv=out_flags("csv"),
    shell:
        "modelrecovery aggregate --fits {input.fits:q} --generators {input.generators:q}"
        " --out-parquet {params.parquet:q} --out-csv {params.csv:q} 2> {log:q}"


# Parameter recovery: the generator's own refits against its generating transform.


rule parameter_recovery:
    input:
        rows=get_parameter_rows,
        curve=exp_path("tables", "generator_curves.parquet"),
    output:
        **table_outputs(["parameter_recovery"]),
        **figure_outputs(
            {"parameter_recovery": "parameter_figure"}, subcategory="Parameter recovery"
        ),
    log:
        log_path("analyse", "parameters"),
    benchmark:
        bench_path("analyse", "parameters")
    conda:
        "../../envs/modelrecovery.yaml"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(20),
    params:
        info=MODEL_INFO_FLAGS,
        parquet=out_flags("parquet"),
        csv=out_flags("csv"),
        png=out_flags("png"),
        svg=out_flags("svg"),
    shell:
        "modelrecovery analyse-parameters --rows {input.rows:q}"
        " --generator-curves {input.curve:q} --experiment {wildcards.experiment:q}"
        " {params.info:q}"
        " --out-parquet {params.parquet:q} --out-csv {params.csv:q}"
        " --out-png {params.png:q} --out-svg {params.svg:q} 2> {log:q}"


# Data or metric: each simulated dataset's generator read off the generators' own
# likelihoods (no refits), beside the best fit, per design.


rule identifiability_ceiling:
    input:
        objects=f"{WORLD}/objects.parquet",
        features=[features_path(g) for g in GENERATORS],
        generators=expand(exp_path("generators", "{g}.npz"), g=GENERATORS, allow_missing=True),
        instances=get_generator_instances,
        shards=get_simulated_shards,
        fits=get_design_rows,
    output:
        **table_outputs(["identifiability_ceiling", "decision_rules", "inversion", "decomposition"]),
        **figure_outputs(
            {"identifiability_ceiling": "ceiling_figure", "inversion": "inversion_figure"},
            subcategory="Data or metric?",
        ),
    log:
        log_path("analyse", "ceiling"),
    benchmark:
        bench_path("analyse", "ceiling")
    conda:
        "../../envs/modelrecovery.yaml"
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(30),
    params:
        features=lambda wildcards, input: named_paths(GENERATORS, input.features),
        generators=lambda wildcards, input: named_paths(GENERATORS, input.generators),
        instances=get_instance_args,
        labels=get_dataset_labels,
        sizes=SIZES,
        eval_fraction=config["simulation"]["eval_fraction"],
        prior=prior_flags(ANALYSIS),
        rule_l2=ANALYSIS["rule_l2"],
        info=MODEL_INFO_FLAGS,
        parquet=out_flags("parquet"),
        csv=out_flags("csv"),
        png=out_flags("png"),
        svg=out_flags("svg"),
    shell:
        "modelrecovery analyse-ceiling --objects {input.objects:q}"
        " --experiment {wildcards.experiment:q} --features {params.features:q}"
        " --generators {params.generators:q} {params.instances:q}"
        " --shard {input.shards:q} {params.labels:q}"
        " --sizes {params.sizes:q} --eval-fraction {params.eval_fraction:q}"
        " --fits {input.fits:q} {params.prior:q} --rule-l2 {params.rule_l2:q} {params.info:q}"
        " --out-parquet {params.parquet:q} --out-csv {params.csv:q}"
        " --out-png {params.png:q} --out-svg {params.svg:q} 2> {log:q}"


# Why models are misidentified (per experiment) and how methods compare (across them).


rule analyse_geometry:
    input:
        objects=f"{WORLD}/objects.parquet",
        human=f"{WORLD}/human/train.parquet",
        features=[features_path(m) for m in MODELS],
        aligned=expand(exp_path("aligned", "{model}.npz"), model=MODELS, allow_missing=True),
    output:
        **table_outputs(["geometry", "rsa", "mds", "rsa_human"]),
        **figure_outputs(
            {"geometry": "geometry_figure"}, subcategory="Why models are misidentified"
        ),
    log:
        log_path("analyse", "geometry"),
    benchmark:
        bench_path("analyse", "geometry")
    conda:
        "../../envs/modelrecovery.yaml"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(20),
    params:
        features=lambda wildcards, input: named_paths(MODELS, input.features),
        aligned=lambda wildcards, input: named_paths(MODELS, input.aligned),
        metric=ANALYSIS["metric"],
        info=MODEL_INFO_FLAGS,
        parquet=out_flags("parquet"),
        csv=out_flags("csv"),
        png=out_flags("png"),
        svg=out_flags("svg"),
    shell:
        "modelrecovery analyse-geometry --objects {input.objects:q} --human-train {input.human:q}"
        " --features {params.features:q} --generators {params.aligned:q} --metric {params.metric:q}"
        " --experiment {wildcards.experiment:q} {params.info:q}"
        " --out-parquet {params.parquet:q} --out-csv {params.csv:q}"
        " --out-png {params.png:q} --out-svg {params.svg:q} 2> {log:q}"


rule analyse_identifiability:
    input:
        outcomes=exp_path("tables", "outcomes.parquet"),
        confusion=exp_path("tables", "confusion.parquet"),
        geometry=exp_path("tables", "geometry.parquet"),
    output:
        **table_outputs(["ranks", "precision_recall", "misidentification"]),
        **figure_outputs(
            {"misidentification": "misidentification_figure"},
            subcategory="Why models are misidentified",
        ),
    log:
        log_path("analyse", "identifiability"),
    benchmark:
        bench_path("analyse", "identifiability")
    conda:
        "../../envs/modelrecovery.yaml"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(20),
    params:
        n_boot=ANALYSIS["n_boot"],
        seed=config["study_seed"],
        parquet=out_flags("parquet"),
        csv=out_flags("csv"),
        png=out_flags("png"),
        svg=out_flags("svg"),
    shell:
        "modelrecovery analyse-identifiability --outcomes {input.outcomes:q}"
        " --confusion {input.confusion:q} --geometry {input.geometry:q}"
        " --experiment {wildcards.experiment:q} --n-boot {params.n_boot:q}"
        " --study-seed {params.seed:q}"
        " --out-parquet {params.parquet:q} --out-csv {params.csv:q}"
        " --out-png {params.png:q} --out-svg {params.svg:q} 2> {log:q}"


# The published model-properties regression (its Table S3): per model its size and
# geometry before and after alignment, regressed on by generator-candidate pairs.


rule analyse_properties:
    input:
        objects=f"{WORLD}/objects.parquet",
        features=[features_path(m) for m in MODELS],
        aligned=expand(exp_path("aligned", "{model}.npz"), model=MODELS, allow_missing=True),
        geometry=exp_path("tables", "geometry.parquet"),
        scores=exp_path("tables", "scores.parquet"),
    output:
        **table_outputs(["model_properties", "properties_regression"]),
    log:
        log_path("analyse", "properties"),
    benchmark:
        bench_path("analyse", "properties")
    conda:
        "../../envs/modelrecovery.yaml"
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(30),
    params:
        features=lambda wildcards, input: named_paths(MODELS, input.features),
        aligned=lambda wildcards, input: named_paths(MODELS, input.aligned),
        predictors=ANALYSIS["properties"]["predictors"],
        outcome=ANALYSIS["properties"]["outcome"],
        correction=ANALYSIS["properties"]["correction"],
        n_boot=ANALYSIS["n_boot"],
        seed=config["study_seed"],
        info=MODEL_INFO_FLAGS,
        parquet=out_flags("parquet"),
        csv=out_flags("csv"),
    shell:
        "modelrecovery analyse-properties --objects {input.objects:q}"
        " --features {params.features:q} --generators {params.aligned:q}"
        " --geometry {input.geometry:q} --scores {input.scores:q}"
        " --predictors {params.predictors:q} --outcome {params.outcome:q}"
        " --correction {params.correction:q} --n-boot {params.n_boot:q}"
        " --study-seed {params.seed:q} --experiment {wildcards.experiment:q} {params.info:q}"
        " --out-parquet {params.parquet:q} --out-csv {params.csv:q} 2> {log:q}"


rule compare_methods:
    input:
        alignment=expand(exp_path("tables", "alignment.parquet"), experiment=EXPERIMENTS),
        curves=expand(exp_path("tables", "recovery_curve.parquet"), experiment=EXPERIMENTS),
        generator_curves=expand(
            exp_path("tables", "generator_curves.parquet"), experiment=EXPERIMENTS
        ),
        rsa_human=expand(exp_path("tables", "rsa_human.parquet"), experiment=EXPERIMENTS),
        external=get_external_scores,
    output:
        **table_outputs(
            [
                "accuracy_vs_identifiability",
                "metrics_by_model",
                "metric_agreement",
                "metric_correlations",
                "metric_agreement_summary",
                "aggregates",
                "aggregate_variance",
                "aggregation_rankings",
                "metric_identifiability",
            ],
            experiment=None,
        ),
        **figure_outputs(
            {
                "accuracy_vs_identifiability": "tradeoff_figure",
                "metric_agreement": "agreement_figure",
                "aggregate_variance": "variance_figure",
            },
            experiment=None,
        ),
    log:
        "logs/comparison/compare_methods.log",
    benchmark:
        "logs/benchmarks/comparison/compare_methods.tsv"
    conda:
        "../../envs/modelrecovery.yaml"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(20),
    params:
        experiments=EXPERIMENTS,
        external=lambda wildcards, input: (
            ["--external", *input.external] if input.external else []
        ),
        aggregate=EXTERNAL.get("aggregate") or [],
        n_boot=ANALYSIS["n_boot"],
        seed=config["study_seed"],
        parquet=out_flags("parquet"),
        csv=out_flags("csv"),
        png=out_flags("png"),
        svg=out_flags("svg"),
    shell:
        "modelrecovery compare-methods --experiments {params.experiments:q}"
        " --alignment {input.alignment:q} --curves {input.curves:q}"
        " --generator-curves {input.generator_curves:q} --rsa-human {input.rsa_human:q}"
        " {params.external:q} --aggregate {params.aggregate:q}"
        " --n-boot {params.n_boot:q} --study-seed {params.seed:q}"
        " --out-parquet {params.parquet:q} --out-csv {params.csv:q}"
        " --out-png {params.png:q} --out-svg {params.svg:q} 2> {log:q}"


# The published study's ranking analyses (its Figures 1 and 3) and the equivalence of
# regularisers within a method (its Figure S1): src/modelrecovery/cli/analyse_ranking.py,
# src/modelrecovery/analysis/ranking.py and equivalence.py.


rule analyse_ranking:
    input:
        scores=exp_path("tables", "scores.parquet"),
        external=get_external_scores,
    output:
        **table_outputs(
            ["recovery_auc", "precision_recall_at_k", "false_rank", "false_rank_correlation"]
        ),
    log:
        log_path("analyse", "ranking"),
    benchmark:
        bench_path("analyse", "ranking")
    conda:
        "../../envs/modelrecovery.yaml"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(20),
    params:
        external=lambda wildcards, input: (
            ["--external", *input.external] if input.external else []
        ),
        n_boot=ANALYSIS["n_boot"],
        seed=config["study_seed"],
        parquet=out_flags("parquet"),
        csv=out_flags("csv"),
    shell:
        "modelrecovery analyse-ranking --scores {input.scores:q}"
        " --experiment {wildcards.experiment:q} {params.external:q}"
        " --n-boot {params.n_boot:q} --study-seed {params.seed:q}"
        " --out-parquet {params.parquet:q} --out-csv {params.csv:q} 2> {log:q}"


rule compare_regularisers:
    input:
        alignment=expand(exp_path("tables", "alignment.parquet"), experiment=EXPERIMENTS),
        generator_curves=expand(
            exp_path("tables", "generator_curves.parquet"), experiment=EXPERIMENTS
        ),
    output:
        **table_outputs(["regulariser_equivalence"], experiment=None),
    log:
        "logs/comparison/compare_regularisers.log",
    benchmark:
        "logs/benchmarks/comparison/compare_regularisers.tsv"
    conda:
        "../../envs/modelrecovery.yaml"
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(10),
    params:
        experiments=EXPERIMENTS,
        methods=[config["experiments"][e]["method"] for e in EXPERIMENTS],
        regularisers=[config["experiments"][e]["regulariser"] for e in EXPERIMENTS],
        similarities=[config["experiments"][e].get("similarity", "dot") for e in EXPERIMENTS],
        margin=ANALYSIS["equivalence_margin"],
        parquet=out_flags("parquet"),
        csv=out_flags("csv"),
    shell:
        "modelrecovery compare-regularisers --experiments {params.experiments:q}"
        " --methods {params.methods:q} --regularisers {params.regularisers:q}"
        " --similarities {params.similarities:q}"
        " --alignment {input.alignment:q} --generator-curves {input.generator_curves:q}"
        " --margin {params.margin:q}"
        " --out-parquet {params.parquet:q} --out-csv {params.csv:q} 2> {log:q}"
