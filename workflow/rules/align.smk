# Stage 2: align each model to the humans (λ by cross-validation) and calibrate its T.


rule align:
    input:
        objects=f"{WORLD}/objects.parquet",
        features=features_path("{model}"),
        train=f"{WORLD}/human/train.parquet",
        test=f"{WORLD}/human/test.parquet",
    output:
        weights=exp_path("aligned", "{model}.npz"),
        meta=exp_path("aligned", "{model}.json"),
        cv=exp_path("aligned", "{model}.cv.parquet"),
    params:
        fit=get_fit_args,
        cv_folds=config["alignment"]["cv_folds"],
        seed=config["study_seed"],
    threads: config["fitting"]["threads"]
    resources:
        mem_mb=4000,
        runtime=30,
    log:
        log_path("align", "{model}"),
    benchmark:
        bench_path("align", "{model}")
    conda:
        "../../envs/modelrecovery.yaml"
    shell:
        "modelrecovery align --objects {input.objects} --features {input.features}"
        " --train {input.train} --test {input.test} --model {wildcards.model}"
        " --experiment {wildcards.experiment} --cv-folds {params.cv_folds}"
        " --study-seed {params.seed} {params.fit} --threads {threads}"
        " --out-weights {output.weights} --out-json {output.meta} --out-cv {output.cv}"
        " 2> {log}"


rule calibrate:
    input:
        objects=f"{WORLD}/objects.parquet",
        features=features_path("{model}"),
        weights=exp_path("aligned", "{model}.npz"),
        meta=exp_path("aligned", "{model}.json"),
        triplets=f"{WORLD}/human/train.parquet",
        ceiling=[f"{WORLD}/human/ceiling.json"] if config["noise_ceiling"] == "auto" else [],
    output:
        weights=exp_path("generators", "{model}.npz"),
        meta=exp_path("generators", "{model}.json"),
    params:
        target=get_calibration_target,
    log:
        log_path("calibrate", "{model}"),
    conda:
        "../../envs/modelrecovery.yaml"
    shell:
        "modelrecovery calibrate --objects {input.objects} --features {input.features}"
        " --aligned {input.weights} --aligned-json {input.meta} --triplets {input.triplets}"
        " --target {params.target} --out-npz {output.weights} --out-json {output.meta}"
        " 2> {log}"
