# Stage 1: the world (objects, features per model, human triplets), validated on the way in,
# and the models' external benchmark scores.
# Commands: src/modelrecovery/cli/world.py; the work: src/modelrecovery/world/
# (synthetic.py, ceiling.py), src/modelrecovery/importers/, src/modelrecovery/io/.


WORLD_OUTPUTS = dict(
    objects=f"{WORLD}/objects.parquet",
    features=[features_path(m) for m in MODELS],
    train=f"{WORLD}/human/train.parquet",
    test=f"{WORLD}/human/test.parquet",
    meta=f"{WORLD}/world.json",
)

if config["world"]["source"] == "synthetic":

    rule synthesize_world:
        output:
            **WORLD_OUTPUTS,
        log:
            "logs/data/synthesize_world.log",
        benchmark:
            "logs/benchmarks/data/synthesize_world.tsv"
        conda:
            "../../envs/modelrecovery.yaml"
        resources:
            mem_mb=scaled(2000),
            runtime=scaled(20),
        params:
            spec=json.dumps(config["world"]["synthetic"], sort_keys=True),
            models=MODELS,
            seed=config["study_seed"],
            ceiling=config["noise_ceiling"],
            features=get_feature_outputs,
        shell:
            "modelrecovery synthesize --spec {params.spec:q} --models {params.models:q}"
            " --study-seed {params.seed:q} --noise-ceiling {params.ceiling:q}"
            " --out-objects {output.objects:q} --out-features {params.features:q}"
            " --out-train {output.train:q} --out-test {output.test:q}"
            " --out-meta {output.meta:q} 2> {log:q}"

elif SOURCE == "files":

    rule import_world:
        input:
            objects=config["world"]["files"]["objects"],
            features=[config["world"]["files"]["features"][m] for m in MODELS],
            train=config["world"]["files"]["human_train"],
            test=config["world"]["files"]["human_test"],
        output:
            **WORLD_OUTPUTS,
        log:
            "logs/data/import_world.log",
        benchmark:
            "logs/benchmarks/data/import_world.tsv"
        conda:
            "../../envs/modelrecovery.yaml"
        resources:
            mem_mb=scaled(2000),
            runtime=scaled(20),
        params:
            features=lambda wildcards, input: named_paths(MODELS, input.features),
            out_features=get_feature_outputs,
        shell:
            "modelrecovery import --objects {input.objects:q} --features {params.features:q}"
            " --train {input.train:q} --test {input.test:q}"
            " --out-objects {output.objects:q} --out-features {params.out_features:q}"
            " --out-train {output.train:q} --out-test {output.test:q}"
            " --out-meta {output.meta:q} 2> {log:q}"

else:
    # The real THINGS study: the published odd-one-out file (or the older arrays), a
    # concept list, and one features file per model in any supported format.
    THINGS = config["world"]["things"]

    if THINGS.get("generate"):
        # A THINGS-like world (world.things.generate) written where the study reads the
        # real files, so the rehearsal goes through the importers a user's data does.

        rule things_like_world:
            output:
                triplets=THINGS["triplets"],
                objects=THINGS["objects"],
                features=[THINGS["features"][m]["path"] for m in MODELS],
                summary=f"{WORLD}/things_like.json",
            log:
                "logs/data/things_like.log",
            benchmark:
                "logs/benchmarks/data/things_like.tsv"
            conda:
                "../../envs/modelrecovery.yaml"
            resources:
                mem_mb=scaled(8000),
                runtime=scaled(60),
            params:
                spec=json.dumps(THINGS["generate"], sort_keys=True),
                seed=THINGS["generate"].get("seed", config["study_seed"]),
                n=THINGS.get("n_objects", 1854),
                features=lambda wildcards, output: named_paths(MODELS, output.features),
            shell:
                "modelrecovery things-like --spec {params.spec:q} --seed {params.seed:q}"
                " --n-objects {params.n:q} --out-triplets {output.triplets:q}"
                " --out-objects {output.objects:q} --features {params.features:q}"
                " --out-summary {output.summary:q} 2> {log:q}"

    rule import_objects:
        input:
            THINGS["objects"],
        output:
            f"{WORLD}/objects.parquet",
        log:
            "logs/data/import_objects.log",
        benchmark:
            "logs/benchmarks/data/import_objects.tsv"
        conda:
            "../../envs/modelrecovery.yaml"
        resources:
            mem_mb=scaled(2000),
            runtime=scaled(20),
        params:
            n=THINGS.get("n_objects", 1854),
        shell:
            "modelrecovery import-objects --names {input:q} --n-objects {params.n:q}"
            " --out {output:q} 2> {log:q}"

    rule import_features:
        input:
            path=lambda wildcards: THINGS["features"][wildcards.model]["path"],
            objects=f"{WORLD}/objects.parquet",
        output:
            features=f"{WORLD}/features/{{model}}.parquet",
            meta=f"{WORLD}/features/{{model}}.json",
        log:
            "logs/data/import_features.{model}.log",
        benchmark:
            "logs/benchmarks/data/import_features.{model}.tsv"
        conda:
            "../../envs/modelrecovery.yaml"
        resources:
            mem_mb=scaled(2000),
            runtime=scaled(20),
        params:
            flags=get_preprocess_flags,
        shell:
            "modelrecovery import-features --path {input.path:q} --objects {input.objects:q}"
            " {params.flags:q} --out {output.features:q} 2> {log:q}"

    HUMAN_OUTPUTS = dict(
        train=f"{WORLD}/human/train.parquet",
        test=f"{WORLD}/human/test.parquet",
        ceiling=f"{WORLD}/human/ceiling.json",
        summary=f"{WORLD}/human/summary.json",
    )
    if THINGS.get("format", "things_csv") == "things_csv":

        rule import_things:
            input:
                triplets=THINGS["triplets"],
                objects=f"{WORLD}/objects.parquet",
            output:
                **HUMAN_OUTPUTS,
            log:
                "logs/data/import_things.log",
            benchmark:
                "logs/benchmarks/data/import_things.tsv"
            conda:
                "../../envs/modelrecovery.yaml"
            resources:
                mem_mb=scaled(2000),
                runtime=scaled(20),
            params:
                split=THINGS.get("test_split", 2),
            shell:
                "modelrecovery import-things --triplets {input.triplets:q}"
                " --objects {input.objects:q} --test-split {params.split:q}"
                " --out-train {output.train:q} --out-test {output.test:q}"
                " --out-ceiling {output.ceiling:q} --out-summary {output.summary:q}"
                " 2> {log:q}"

    else:

        rule import_arrays:
            input:
                train=THINGS["train"],
                test=THINGS["test"],
                objects=f"{WORLD}/objects.parquet",
            output:
                **HUMAN_OUTPUTS,
            log:
                "logs/data/import_arrays.log",
            benchmark:
                "logs/benchmarks/data/import_arrays.tsv"
            conda:
                "../../envs/modelrecovery.yaml"
            resources:
                mem_mb=scaled(2000),
                runtime=scaled(20),
            shell:
                "modelrecovery import-arrays --train {input.train:q} --test {input.test:q}"
                " --objects {input.objects:q} --out-train {output.train:q}"
                " --out-test {output.test:q} --out-ceiling {output.ceiling:q}"
                " --out-summary {output.summary:q} 2> {log:q}"


if SYNTHETIC_SCORES:

    rule synthesize_external_scores:
        output:
            [f"{WORLD}/external/{group}.csv" for group in SYNTHETIC_SCORES],
        log:
            "logs/data/synthesize_external_scores.log",
        benchmark:
            "logs/benchmarks/data/synthesize_external_scores.tsv"
        conda:
            "../../envs/modelrecovery.yaml"
        resources:
            mem_mb=scaled(2000),
            runtime=scaled(20),
        params:
            models=MODELS,
            groups=[f"{group}={n}" for group, n in SYNTHETIC_SCORES.items()],
            out=lambda wildcards, output: [
                f"{group}={path}" for group, path in zip(SYNTHETIC_SCORES, output)
            ],
            seed=config["study_seed"],
        shell:
            "modelrecovery synthesize-scores --models {params.models:q}"
            " --groups {params.groups:q} --study-seed {params.seed:q} --out {params.out:q}"
            " 2> {log:q}"


if SCORE_FILES:

    # Validated first of all (priority), so a bad scores file stops the run before its
    # fits rather than at the comparison that reads it.
    rule import_external_scores:
        input:
            [path for path, _ in SCORE_FILES],
        output:
            f"{WORLD}/external_scores.parquet",
        log:
            "logs/data/import_external_scores.log",
        benchmark:
            "logs/benchmarks/data/import_external_scores.tsv"
        priority: 100
        conda:
            "../../envs/modelrecovery.yaml"
        resources:
            mem_mb=scaled(2000),
            runtime=scaled(20),
        params:
            groups=[group for _, group in SCORE_FILES],
            models=MODELS,
        shell:
            "modelrecovery import-scores --file {input:q} --group {params.groups:q}"
            " --models {params.models:q} --out {output:q} 2> {log:q}"
