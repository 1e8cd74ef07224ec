# Stage 5: aggregate recovery rows into curves, confusion matrices and the summary.

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
        parquet=expand(exp_path("tables", "{table}.parquet"), table=TABLES, allow_missing=True),
        csv=[
            report(
                exp_path("tables", f"{table}.csv"),
                caption=f"../report/{table}.rst",
                category="{experiment}",
                subcategory="Tables",
            )
            for table in TABLES
        ],
    params:
        outdir=output_dir("parquet"),
    log:
        log_path("aggregate", "aggregate"),
    conda:
        "../../envs/modelrecovery.yaml"
    shell:
        "modelrecovery aggregate --fits {input.fits:q} --generators {input.generators:q}"
        " --out-dir {params.outdir:q} 2> {log:q}"


# Why models are misidentified (per experiment) and how methods compare (across them).


rule analyse_geometry:
    input:
        objects=f"{WORLD}/objects.parquet",
        human=f"{WORLD}/human/train.parquet",
        features=[features_path(m) for m in MODELS],
        aligned=expand(exp_path("aligned", "{model}.npz"), model=MODELS, allow_missing=True),
    output:
        **table_outputs(["geometry", "rsa", "mds", "rsa_human"]),
        figure=report(
            exp_path("figures", "geometry.png"),
            caption="../report/geometry_figure.rst",
            category="{experiment}",
            subcategory="Why models are misidentified",
        ),
        figure_svg=exp_path("figures", "geometry.svg"),
    params:
        features=lambda wildcards, input: named_paths(MODELS, input.features),
        aligned=lambda wildcards, input: named_paths(MODELS, input.aligned),
        metric=ANALYSIS.get("metric", "correlation"),
        outdir=output_dir("geometry_parquet"),
        figures=output_dir("figure"),
    log:
        log_path("analyse", "geometry"),
    conda:
        "../../envs/modelrecovery.yaml"
    shell:
        "modelrecovery analyse-geometry --objects {input.objects:q} --human-train {input.human:q}"
        " --features {params.features:q} --generators {params.aligned:q} --metric {params.metric:q}"
        " --experiment {wildcards.experiment:q} --out-dir {params.outdir:q}"
        " --figures {params.figures:q} 2> {log:q}"


rule analyse_identifiability:
    input:
        outcomes=exp_path("tables", "outcomes.parquet"),
        confusion=exp_path("tables", "confusion.parquet"),
        geometry=exp_path("tables", "geometry.parquet"),
    output:
        **table_outputs(["ranks", "precision_recall", "misidentification"]),
        figure=report(
            exp_path("figures", "misidentification.png"),
            caption="../report/misidentification_figure.rst",
            category="{experiment}",
            subcategory="Why models are misidentified",
        ),
        figure_svg=exp_path("figures", "misidentification.svg"),
    params:
        n_boot=ANALYSIS.get("n_boot", 1000),
        seed=config["study_seed"],
        outdir=output_dir("ranks_parquet"),
        figures=output_dir("figure"),
    log:
        log_path("analyse", "identifiability"),
    conda:
        "../../envs/modelrecovery.yaml"
    shell:
        "modelrecovery analyse-identifiability --outcomes {input.outcomes:q}"
        " --confusion {input.confusion:q} --geometry {input.geometry:q}"
        " --experiment {wildcards.experiment:q} --n-boot {params.n_boot:q}"
        " --study-seed {params.seed:q} --out-dir {params.outdir:q} --figures {params.figures:q}"
        " 2> {log:q}"


rule compare_methods:
    input:
        alignment=expand(exp_path("tables", "alignment.parquet"), experiment=EXPERIMENTS),
        curves=expand(exp_path("tables", "recovery_curve.parquet"), experiment=EXPERIMENTS),
        generator_curves=expand(
            exp_path("tables", "generator_curves.parquet"), experiment=EXPERIMENTS
        ),
        rsa_human=expand(exp_path("tables", "rsa_human.parquet"), experiment=EXPERIMENTS),
    output:
        **table_outputs(
            ["accuracy_vs_identifiability", "metrics_by_model", "metric_agreement"],
            experiment=None,
        ),
        tradeoff=report(
            f"{RESULTS}/comparison/figures/accuracy_vs_identifiability.png",
            caption="../report/tradeoff_figure.rst",
            category="Across experiments",
        ),
        tradeoff_svg=f"{RESULTS}/comparison/figures/accuracy_vs_identifiability.svg",
        agreement=report(
            f"{RESULTS}/comparison/figures/metric_agreement.png",
            caption="../report/agreement_figure.rst",
            category="Across experiments",
        ),
        agreement_svg=f"{RESULTS}/comparison/figures/metric_agreement.svg",
    params:
        experiments=EXPERIMENTS,
        outdir=output_dir("accuracy_vs_identifiability_parquet"),
        figures=output_dir("tradeoff"),
    log:
        "logs/comparison/compare_methods.log",
    conda:
        "../../envs/modelrecovery.yaml"
    shell:
        "modelrecovery compare-methods --experiments {params.experiments:q}"
        " --alignment {input.alignment:q} --curves {input.curves:q}"
        " --generator-curves {input.generator_curves:q} --rsa-human {input.rsa_human:q}"
        " --out-dir {params.outdir:q} --figures {params.figures:q} 2> {log:q}"
