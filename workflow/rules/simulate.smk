# Stage 3: one simulated dataset per generator × seed, at the largest training size;
# every smaller size is a prefix of it.


rule simulate:
    input:
        objects=f"{WORLD}/objects.parquet",
        features=features_path("{generator}"),
        generator=exp_path("generators", "{generator}.npz"),
        exclude=(
            [f"{WORLD}/human/train.parquet", f"{WORLD}/human/test.parquet"]
            if config["simulation"]["exclude_human_triplets"]
            else []
        ),
    output:
        exp_path("simulated", "{generator}", "seed{seed}.parquet"),
    params:
        n_max=max(SIZES),
        folds=config["simulation"]["folds"],
        val_fraction=config["simulation"]["val_fraction"],
        eval_fraction=config["simulation"]["eval_fraction"],
        seed=config["study_seed"],
    resources:
        mem_mb=2000,
        runtime=20,
    log:
        log_path("simulate", "{generator}.seed{seed}"),
    conda:
        "../../envs/modelrecovery.yaml"
    shell:
        "modelrecovery simulate --objects {input.objects:q} --features {input.features:q}"
        " --generator-file {input.generator:q} --experiment {wildcards.experiment:q}"
        " --generator {wildcards.generator:q} --seed {wildcards.seed:q}"
        " --study-seed {params.seed:q} --n-train-max {params.n_max:q} --folds {params.folds:q}"
        " --val-fraction {params.val_fraction:q} --eval-fraction {params.eval_fraction:q}"
        " --exclude {input.exclude:q} --out {output:q} 2> {log:q}"
