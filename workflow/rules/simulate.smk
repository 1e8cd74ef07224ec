# Stage 3: one simulated dataset per design × generator × seed (one job each), at the
# largest training size; every smaller size is a prefix of it. random
# draws uniform triplets; static and mimic answer the seed's design; adaptive collects its
# triplets in rounds (design.smk).
# Commands: src/modelrecovery/cli/simulate.py; the work: src/modelrecovery/simulate.py,
# src/modelrecovery/sampling.py.


rule simulate:
    input:
        objects=f"{WORLD}/objects.parquet",
        features=features_path("{generator}"),
        generator=get_generator_file,
        exclude=get_human_exclusions,
        designs=get_design_files,
    output:
        exp_path("simulated", "{design}", "{generator}", "seed{seed}.parquet"),
    log:
        log_path("simulate", "{design}.{generator}.seed{seed}"),
    benchmark:
        bench_path("simulate", "{design}.{generator}.seed{seed}")
    wildcard_constraints:
        design=r"random|static|mimic",
    conda:
        "../../envs/modelrecovery.yaml"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(20),
    params:
        n_max=max(SIZES),
        folds=config["simulation"]["folds"],
        val_fraction=config["simulation"]["val_fraction"],
        eval_fraction=config["simulation"]["eval_fraction"],
        seed=config["study_seed"],
        participants=config["simulation"]["participants"],
        protocol=config["simulation"]["protocol"],
        designs=lambda wildcards, input: (
            ["--design-file", *input.designs] if input.designs else []
        ),
    shell:
        "modelrecovery simulate --objects {input.objects:q} --features {input.features:q}"
        " --generator-file {input.generator:q} --experiment {wildcards.experiment:q}"
        " --generator {wildcards.generator:q} --seed {wildcards.seed:q}"
        " --study-seed {params.seed:q} --n-train-max {params.n_max:q} --folds {params.folds:q}"
        " --val-fraction {params.val_fraction:q} --eval-fraction {params.eval_fraction:q}"
        " --exclude {input.exclude:q} --design {wildcards.design:q} {params.designs:q}"
        " --participants {params.participants:q} --protocol {params.protocol:q}"
        " --out {output:q} 2> {log:q}"
