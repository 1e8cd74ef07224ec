# Designs: which triplets to collect. Per experiment and seed a static design (ranked
# under the calibrated generators, shared by every generator's dataset), per generator
# and seed an adaptive dataset (rounds ranked under the fitted candidates), the tables to
# show people, and the comparison of designs by recovery.


rule design_static:
    input:
        objects=f"{WORLD}/objects.parquet",
        features=[features_path(m) for m in GENERATORS],
        generators=expand(exp_path("generators", "{model}.npz"), model=GENERATORS,
                          allow_missing=True),
        exclude=get_human_exclusions,
        confusion=get_confusion_input,
    output:
        design=exp_path("design", "{kind}", "seed{seed}.parquet"),
        meta=exp_path("design", "{kind}", "seed{seed}.json"),
    wildcard_constraints:
        kind=r"static|random",
    params:
        features=lambda wildcards, input: named_paths(GENERATORS, input.features),
        generators=lambda wildcards, input: named_paths(GENERATORS, input.generators),
        criterion=lambda wildcards, input: (
            ["--uniform"] if wildcards.kind == "random"
            else get_criterion_args(wildcards, input)
        ),
        flags=design_flags(),
        n_max=max(SIZES),
        folds=config["simulation"]["folds"],
        val_fraction=config["simulation"]["val_fraction"],
        eval_fraction=config["simulation"]["eval_fraction"],
        seed=config["study_seed"],
        device=DESIGN["device"],
        memory=DESIGN["max_memory_gb"],
    resources:
        mem_mb=4000,
        runtime=30,
    log:
        log_path("design", "{kind}.seed{seed}"),
    benchmark:
        bench_path("design", "{kind}.seed{seed}")
    conda:
        "../../envs/modelrecovery.yaml"
    shell:
        "modelrecovery design static --objects {input.objects:q}"
        " --features {params.features:q} --generators {params.generators:q}"
        " {params.criterion:q} {params.flags:q} --experiment {wildcards.experiment:q}"
        " --seed {wildcards.seed:q} --study-seed {params.seed:q}"
        " --n-train-max {params.n_max:q} --folds {params.folds:q}"
        " --val-fraction {params.val_fraction:q} --eval-fraction {params.eval_fraction:q}"
        " --exclude {input.exclude:q} --device {params.device:q}"
        " --max-memory-gb {params.memory:q} --out {output.design:q}"
        " --out-json {output.meta:q} 2> {log:q}"


rule simulate_adaptive:
    input:
        objects=f"{WORLD}/objects.parquet",
        features=features_path("{generator}"),
        generator=exp_path("generators", "{generator}.npz"),
        candidates=[features_path(m) for m in CANDIDATES],
        first=exp_path("design", "static", "seed{seed}.parquet"),
        first_meta=exp_path("design", "static", "seed{seed}.json"),
        exclude=get_human_exclusions,
    output:
        shard=exp_path("simulated", "adaptive", "{generator}", "seed{seed}.parquet"),
        meta=exp_path("simulated", "adaptive", "{generator}", "seed{seed}.json"),
    params:
        fit=get_fit_args,
        candidates=get_candidate_args,
        flags=design_flags(),
        sizes=SIZES,
        eval_fraction=config["simulation"]["eval_fraction"],
        floor=DESIGN["posterior_floor"],
        seed=config["study_seed"],
    threads: config["fitting"]["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
    log:
        log_path("simulate", "adaptive.{generator}.seed{seed}"),
    benchmark:
        bench_path("simulate", "adaptive.{generator}.seed{seed}")
    conda:
        "../../envs/modelrecovery.yaml"
    shell:
        "modelrecovery design adaptive --objects {input.objects:q}"
        " --features {input.features:q} --generator-file {input.generator:q}"
        " --candidates {params.candidates:q} --first {input.first:q}"
        " --first-json {input.first_meta:q} --sizes {params.sizes:q}"
        " --experiment {wildcards.experiment:q} --generator {wildcards.generator:q}"
        " --seed {wildcards.seed:q} --study-seed {params.seed:q}"
        " --eval-fraction {params.eval_fraction:q} --posterior-floor {params.floor:q}"
        " --exclude {input.exclude:q} {params.flags:q} {params.fit:q}"
        " --threads {threads:q} --out {output.shard:q} --out-json {output.meta:q}"
        " 2> {log:q}"


rule export_design:
    input:
        unpack(get_export_source),
        objects=f"{WORLD}/objects.parquet",
    output:
        triplets=report(
            exp_path("design", "{design}", "triplets.csv"),
            caption="../report/design_triplets.rst",
            category="{experiment}",
            subcategory="Designing the next experiment",
        ),
        folds=exp_path("design", "{design}", "folds.csv"),
    params:
        n_train=lambda wildcards: (
            ["--n-train", str(SIZES[0])] if wildcards.design == "adaptive" else []
        ),
        eval_fraction=config["simulation"]["eval_fraction"],
    log:
        log_path("design", "export.{design}"),
    conda:
        "../../envs/modelrecovery.yaml"
    shell:
        "modelrecovery design export --design {input.design:q}"
        " --design-json {input.meta:q} --objects {input.objects:q} {params.n_train:q}"
        " --eval-fraction {params.eval_fraction:q} --out {output.triplets:q}"
        " --out-folds {output.folds:q} 2> {log:q}"


rule compare_designs:
    input:
        fits=get_design_rows,
    output:
        **table_outputs(["design_curves", "design_confusion", "design_savings"]),
        figure=report(
            exp_path("figures", "design_curves.png"),
            caption="../report/design_curves_figure.rst",
            category="{experiment}",
            subcategory="Designing the next experiment",
        ),
        figure_svg=exp_path("figures", "design_curves.svg"),
    params:
        n_boot=DESIGN["n_boot"],
        target=DESIGN["target"],
        seed=config["study_seed"],
        outdir=output_dir("design_curves_parquet"),
        figures=output_dir("figure"),
    log:
        log_path("design", "compare"),
    conda:
        "../../envs/modelrecovery.yaml"
    shell:
        "modelrecovery design compare --fits {input.fits:q}"
        " --experiment {wildcards.experiment:q} --n-boot {params.n_boot:q}"
        " --target {params.target:q} --study-seed {params.seed:q}"
        " --out-dir {params.outdir:q} --figures {params.figures:q} 2> {log:q}"
