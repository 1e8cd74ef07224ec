# Designs: which triplets to collect. Per experiment and seed a static design (ranked
# under the calibrated generators, shared by every generator's dataset) and a mimic
# design (ranked against the candidates refitted to imitate each generator), per
# generator and seed an adaptive dataset (rounds ranked under the fitted candidates), the
# tables to show people, and the comparison of designs by recovery.
# Commands: src/modelrecovery/cli/design.py, src/modelrecovery/cli/design_mimic.py; the
# work: src/modelrecovery/design/ (information.py, static.py, adaptive.py, mimic.py,
# export.py), src/modelrecovery/analysis/designs.py.


rule design_static:
    input:
        objects=f"{WORLD}/objects.parquet",
        features=[features_path(m) for m in GENERATORS],
        generators=expand(
            exp_path("generators", "{model}.npz"), model=GENERATORS, allow_missing=True
        ),
        exclude=get_human_exclusions,
        confusion=get_confusion_input,
    output:
        design=exp_path("design", "{kind}", "seed{seed}.parquet"),
        meta=exp_path("design", "{kind}", "seed{seed}.json"),
    log:
        log_path("design", "{kind}.seed{seed}"),
    benchmark:
        bench_path("design", "{kind}.seed{seed}")
    wildcard_constraints:
        kind=r"static|random",
    conda:
        "../../envs/modelrecovery.yaml"
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(30),
    params:
        features=lambda wildcards, input: named_paths(GENERATORS, input.features),
        generators=lambda wildcards, input: named_paths(GENERATORS, input.generators),
        criterion=lambda wildcards, input: (
            ["--uniform"] if wildcards.kind == "random" else get_criterion_args(wildcards, input)
        ),
        flags=DESIGN_FLAGS,
        n_max=max(SIZES),
        folds=config["simulation"]["folds"],
        val_fraction=config["simulation"]["val_fraction"],
        eval_fraction=config["simulation"]["eval_fraction"],
        seed=config["study_seed"],
        device=DESIGN["device"],
        memory=DESIGN["max_memory_gb"],
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
        generator=get_generator_file,
        candidates=[features_path(m) for m in CANDIDATES],
        first=exp_path("design", "static", "seed{seed}.parquet"),
        first_meta=exp_path("design", "static", "seed{seed}.json"),
        exclude=get_human_exclusions,
    output:
        shard=exp_path("simulated", "adaptive", "{generator}", "seed{seed}.parquet"),
        meta=exp_path("simulated", "adaptive", "{generator}", "seed{seed}.json"),
    log:
        log_path("simulate", "adaptive.{generator}.seed{seed}"),
    benchmark:
        bench_path("simulate", "adaptive.{generator}.seed{seed}")
    conda:
        "../../envs/modelrecovery.yaml"
    threads: config["fitting"]["threads"]
    resources:
        **GPU_REQUEST,
        mem_mb=scaled(4000),
        runtime=scaled(120),
    params:
        fit=get_fit_args,
        candidates=get_candidate_args,
        flags=ADAPTIVE_FLAGS,
        sizes=SIZES,
        eval_fraction=config["simulation"]["eval_fraction"],
        seed=config["study_seed"],
        participants=config["simulation"]["participants"],
    shell:
        "modelrecovery design adaptive --objects {input.objects:q}"
        " --features {input.features:q} --generator-file {input.generator:q}"
        " --candidates {params.candidates:q} --first {input.first:q}"
        " --first-json {input.first_meta:q} --sizes {params.sizes:q}"
        " --experiment {wildcards.experiment:q} --generator {wildcards.generator:q}"
        " --seed {wildcards.seed:q} --study-seed {params.seed:q}"
        " --eval-fraction {params.eval_fraction:q}"
        " --participants {params.participants:q}"
        " --exclude {input.exclude:q} {params.flags:q} {params.fit:q}"
        " --threads {threads:q} --out {output.shard:q} --out-json {output.meta:q}"
        " 2> {log:q}"


rule design_mimic:
    input:
        objects=f"{WORLD}/objects.parquet",
        candidates=[features_path(m) for m in CANDIDATES],
        generators=expand(
            exp_path("generators", "{model}.npz"), model=GENERATORS, allow_missing=True
        ),
        exclude=get_human_exclusions,
        confusion=get_confusion_input,
    output:
        design=exp_path("design", "mimic", "seed{seed}.parquet"),
        meta=exp_path("design", "mimic", "seed{seed}.json"),
    log:
        log_path("design", "mimic.seed{seed}"),
    benchmark:
        bench_path("design", "mimic.seed{seed}")
    conda:
        "../../envs/modelrecovery.yaml"
    threads: config["fitting"]["threads"]
    resources:
        **GPU_REQUEST,
        mem_mb=scaled(4000),
        runtime=scaled(60),
    params:
        fit=get_fit_args,
        candidates=get_candidate_args,
        generators=lambda wildcards, input: named_paths(GENERATORS, input.generators),
        criterion=get_criterion_args,
        flags=MIMIC_FLAGS,
        n_max=max(SIZES),
        folds=config["simulation"]["folds"],
        val_fraction=config["simulation"]["val_fraction"],
        eval_fraction=config["simulation"]["eval_fraction"],
        seed=config["study_seed"],
    shell:
        "modelrecovery design mimic --objects {input.objects:q}"
        " --candidates {params.candidates:q} --generators {params.generators:q}"
        " {params.criterion:q} {params.flags:q} {params.fit:q} --threads {threads:q}"
        " --experiment {wildcards.experiment:q} --seed {wildcards.seed:q}"
        " --study-seed {params.seed:q} --n-train-max {params.n_max:q}"
        " --folds {params.folds:q} --val-fraction {params.val_fraction:q}"
        " --eval-fraction {params.eval_fraction:q} --exclude {input.exclude:q}"
        " --out {output.design:q} --out-json {output.meta:q} 2> {log:q}"


rule mimic_divergence:
    input:
        designs=expand(
            exp_path("design", "mimic", "seed{seed}.json"), seed=SEEDS, allow_missing=True
        ),
        confusion=exp_path("tables", "design_confusion.parquet"),
    output:
        **table_outputs(["mimic_divergence"]),
    log:
        log_path("design", "divergence"),
    benchmark:
        bench_path("design", "divergence")
    conda:
        "../../envs/modelrecovery.yaml"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(20),
    params:
        folds=config["simulation"]["folds"],
        eval_fraction=config["simulation"]["eval_fraction"],
        parquet=out_flags("parquet"),
        csv=out_flags("csv"),
    shell:
        "modelrecovery design divergence --designs {input.designs:q}"
        " --confusion {input.confusion:q} --experiment {wildcards.experiment:q}"
        " --folds {params.folds:q} --eval-fraction {params.eval_fraction:q}"
        " --out-parquet {params.parquet:q} --out-csv {params.csv:q} 2> {log:q}"


rule export_design:
    input:
        unpack(get_export_source),
        objects=f"{WORLD}/objects.parquet",
    output:
        # triplets.csv has one row per triplet (millions at THINGS sizes), so the report
        # embeds its fixed-size summary, which names the file, instead.
        triplets=exp_path("design", "{design}", "triplets.csv"),
        folds=exp_path("design", "{design}", "folds.csv"),
        summary=report(
            exp_path("design", "{design}", "triplets_summary.csv"),
            caption="../report/design_triplets.rst",
            category="{experiment}",
            subcategory="Designing the next experiment",
        ),
    log:
        log_path("design", "export.{design}"),
    benchmark:
        bench_path("design", "export.{design}")
    conda:
        "../../envs/modelrecovery.yaml"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(20),
    params:
        n_train=lambda wildcards: (
            ["--n-train", str(SIZES[0])] if wildcards.design == "adaptive" else []
        ),
        eval_fraction=config["simulation"]["eval_fraction"],
        # The summary names triplets.csv by its path within the results folder.
        file=lambda wildcards, output: os.path.relpath(output.triplets, RESULTS),
    shell:
        "modelrecovery design export --design {input.design:q}"
        " --design-json {input.meta:q} --objects {input.objects:q} {params.n_train:q}"
        " --eval-fraction {params.eval_fraction:q} --out {output.triplets:q}"
        " --out-folds {output.folds:q} --out-summary {output.summary:q}"
        " --file-label {params.file:q} 2> {log:q}"


rule compare_designs:
    input:
        fits=get_design_rows,
    output:
        **table_outputs(["design_curves", "design_confusion", "design_savings"]),
        **figure_outputs(
            {"design_curves": "design_curves_figure"},
            subcategory="Designing the next experiment",
        ),
    log:
        log_path("design", "compare"),
    benchmark:
        bench_path("design", "compare")
    conda:
        "../../envs/modelrecovery.yaml"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(20),
    params:
        n_boot=DESIGN["n_boot"],
        target=DESIGN["target"],
        seed=config["study_seed"],
        parquet=out_flags("parquet"),
        csv=out_flags("csv"),
        png=out_flags("png"),
        svg=out_flags("svg"),
    shell:
        "modelrecovery design compare --fits {input.fits:q}"
        " --experiment {wildcards.experiment:q} --n-boot {params.n_boot:q}"
        " --target {params.target:q} --study-seed {params.seed:q}"
        " --out-parquet {params.parquet:q} --out-csv {params.csv:q}"
        " --out-png {params.png:q} --out-svg {params.svg:q} 2> {log:q}"
