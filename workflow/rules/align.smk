# Stage 2: align each model to the humans (λ by cross-validation) and calibrate its T;
# with simulation.generator_instances > 1, further instances of each generator; or
# copies of another experiment's generators (experiments.<name>.generators_from).
# Commands: src/modelrecovery/cli/align.py; the work: src/modelrecovery/align.py,
# src/modelrecovery/oddoneout.py (calibration), src/modelrecovery/fitting/.


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
    log:
        log_path("align", "{model}"),
    benchmark:
        bench_path("align", "{model}")
    conda:
        "../../envs/modelrecovery.yaml"
    threads: config["fitting"]["threads"]
    resources:
        **GPU_REQUEST,
        mem_mb=scaled(FIT_MEM_MB),
        runtime=scaled(60),
    params:
        fit=get_fit_args,
        cv_folds=config["alignment"]["cv_folds"],
        seed=config["study_seed"],
    shell:
        "modelrecovery align --objects {input.objects:q} --features {input.features:q}"
        " --train {input.train:q} --test {input.test:q} --model {wildcards.model:q}"
        " --experiment {wildcards.experiment:q} --cv-folds {params.cv_folds:q}"
        " --study-seed {params.seed:q} {params.fit:q} --threads {threads:q}"
        " --out-weights {output.weights:q} --out-json {output.meta:q} --out-cv {output.cv:q}"
        " 2> {log:q}"


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
    log:
        log_path("calibrate", "{model}"),
    benchmark:
        bench_path("calibrate", "{model}")
    wildcard_constraints:
        experiment=ALIGNING,
    conda:
        "../../envs/modelrecovery.yaml"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(20),
    params:
        target=get_calibration_target,
    shell:
        "modelrecovery calibrate --objects {input.objects:q} --features {input.features:q}"
        " --aligned {input.weights:q} --aligned-json {input.meta:q} --triplets {input.triplets:q}"
        " --target {params.target:q} --out-npz {output.weights:q} --out-json {output.meta:q}"
        " 2> {log:q}"


# Generator instances (simulation.generator_instances: k > 1): W refitted at the aligned
# λ to a bootstrap resample of the human training triplets, then calibrated like the
# generator; seed s simulates from instance s mod k.


rule align_instance:
    input:
        objects=f"{WORLD}/objects.parquet",
        features=features_path("{model}"),
        train=f"{WORLD}/human/train.parquet",
        test=f"{WORLD}/human/test.parquet",
        aligned=exp_path("aligned", "{model}.json"),
    output:
        weights=exp_path("aligned", "instances", "{model}", "i{instance}.npz"),
        meta=exp_path("aligned", "instances", "{model}", "i{instance}.json"),
    log:
        log_path("align", "{model}.i{instance}"),
    benchmark:
        bench_path("align", "{model}.i{instance}")
    conda:
        "../../envs/modelrecovery.yaml"
    threads: config["fitting"]["threads"]
    resources:
        **GPU_REQUEST,
        mem_mb=scaled(FIT_MEM_MB),
        runtime=scaled(60),
    params:
        fit=get_fit_args,
        seed=config["study_seed"],
    shell:
        "modelrecovery align-instance --objects {input.objects:q}"
        " --features {input.features:q} --train {input.train:q} --test {input.test:q}"
        " --aligned-json {input.aligned:q} --model {wildcards.model:q}"
        " --experiment {wildcards.experiment:q} --instance {wildcards.instance:q}"
        " --study-seed {params.seed:q} {params.fit:q} --threads {threads:q}"
        " --out-weights {output.weights:q} --out-json {output.meta:q} 2> {log:q}"


use rule calibrate as calibrate_instance with:
    input:
        objects=f"{WORLD}/objects.parquet",
        features=features_path("{model}"),
        weights=exp_path("aligned", "instances", "{model}", "i{instance}.npz"),
        meta=exp_path("aligned", "instances", "{model}", "i{instance}.json"),
        triplets=f"{WORLD}/human/train.parquet",
        ceiling=[f"{WORLD}/human/ceiling.json"] if config["noise_ceiling"] == "auto" else [],
    output:
        weights=exp_path("generators", "instances", "{model}", "i{instance}.npz"),
        meta=exp_path("generators", "instances", "{model}", "i{instance}.json"),
    log:
        log_path("calibrate", "{model}.i{instance}"),
    benchmark:
        bench_path("calibrate", "{model}.i{instance}")
    wildcard_constraints:
        experiment=ALIGNING,


# Generators from another experiment (experiments.<name>.generators_from): copies of the
# source experiment's calibrated generators, so its datasets come from generators aligned
# under the source's probe while its candidates are refitted under its own.


rule borrow_generator:
    input:
        unpack(get_borrowed_generator),
    output:
        npz=exp_path("generators", "{model}.npz"),
        json=exp_path("generators", "{model}.json"),
    log:
        log_path("borrow", "{model}"),
    benchmark:
        bench_path("borrow", "{model}")
    wildcard_constraints:
        experiment=BORROWING,
    localrule: True
    conda:
        "../../envs/modelrecovery.yaml"
    shell:
        "(cp {input.npz:q} {output.npz:q} && cp {input.json:q} {output.json:q}) 2> {log:q}"


use rule borrow_generator as borrow_instance with:
    output:
        npz=exp_path("generators", "instances", "{model}", "i{instance}.npz"),
        json=exp_path("generators", "instances", "{model}", "i{instance}.json"),
    log:
        log_path("borrow", "{model}.i{instance}"),
    benchmark:
        bench_path("borrow", "{model}.i{instance}")
