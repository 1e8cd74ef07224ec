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
        "modelrecovery simulate --objects {input.objects} --features {input.features}"
        " --generator-file {input.generator} --experiment {wildcards.experiment}"
        " --generator {wildcards.generator} --seed {wildcards.seed}"
        " --study-seed {params.seed} --n-train-max {params.n_max} --folds {params.folds}"
        " --val-fraction {params.val_fraction} --eval-fraction {params.eval_fraction}"
        " --exclude {input.exclude} --out {output} 2> {log}"
