# Stage 1: the world (objects, features per model, human triplets), validated on the way in.

WORLD_OUTPUTS = dict(
    objects=f"{WORLD}/objects.parquet",
    features=expand(f"{WORLD}/features/{{model}}.parquet", model=MODELS),
    train=f"{WORLD}/human/train.parquet",
    test=f"{WORLD}/human/test.parquet",
    meta=f"{WORLD}/world.json",
)

if config["world"]["source"] == "synthetic":

    rule synthesize_world:
        output:
            **WORLD_OUTPUTS,
        params:
            spec=json.dumps(config["world"]["synthetic"], sort_keys=True),
            models=MODELS,
            seed=config["study_seed"],
            ceiling=config["noise_ceiling"],
            outdir=output_dir("objects"),
        log:
            "logs/data/synthesize_world.log",
        conda:
            "../../envs/modelrecovery.yaml"
        shell:
            "modelrecovery synthesize --spec {params.spec:q} --models {params.models}"
            " --study-seed {params.seed} --noise-ceiling {params.ceiling}"
            " --out-dir {params.outdir} 2> {log}"

elif SOURCE == "files":

    rule import_world:
        input:
            objects=config["world"]["files"]["objects"],
            features=[config["world"]["files"]["features"][m] for m in MODELS],
            train=config["world"]["files"]["human_train"],
            test=config["world"]["files"]["human_test"],
        output:
            **WORLD_OUTPUTS,
        params:
            features=lambda wildcards, input: " ".join(
                f"{m}={p}" for m, p in zip(MODELS, input.features)
            ),
            outdir=output_dir("objects"),
        log:
            "logs/data/import_world.log",
        conda:
            "../../envs/modelrecovery.yaml"
        shell:
            "modelrecovery import --objects {input.objects} --features {params.features}"
            " --train {input.train} --test {input.test} --out-dir {params.outdir} 2> {log}"

else:
    # The real THINGS study: the published odd-one-out file (or the older arrays), a
    # concept list, and one features file per model in any supported format.
    THINGS = config["world"]["things"]

    rule import_objects:
        input:
            THINGS["objects"],
        output:
            f"{WORLD}/objects.parquet",
        params:
            n=THINGS.get("n_objects", 1854),
        log:
            "logs/data/import_objects.log",
        conda:
            "../../envs/modelrecovery.yaml"
        shell:
            "modelrecovery import-objects --names {input} --n-objects {params.n}"
            " --out {output} 2> {log}"

    rule import_features:
        input:
            path=lambda wildcards: THINGS["features"][wildcards.model]["path"],
            objects=f"{WORLD}/objects.parquet",
        output:
            features=f"{WORLD}/features/{{model}}.parquet",
            meta=f"{WORLD}/features/{{model}}.json",
        params:
            flags=get_preprocess_flags,
        log:
            "logs/data/import_features.{model}.log",
        conda:
            "../../envs/modelrecovery.yaml"
        shell:
            "modelrecovery import-features --path {input.path} --objects {input.objects}"
            " {params.flags} --out {output.features} 2> {log}"

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
            params:
                split=THINGS.get("test_split", 2),
                outdir=output_dir("train"),
            log:
                "logs/data/import_things.log",
            conda:
                "../../envs/modelrecovery.yaml"
            shell:
                "modelrecovery import-things --triplets {input.triplets}"
                " --objects {input.objects} --test-split {params.split}"
                " --out-dir {params.outdir} 2> {log}"

    else:

        rule import_arrays:
            input:
                train=THINGS["train"],
                test=THINGS["test"],
                objects=f"{WORLD}/objects.parquet",
            output:
                **HUMAN_OUTPUTS,
            params:
                outdir=output_dir("train"),
            log:
                "logs/data/import_arrays.log",
            conda:
                "../../envs/modelrecovery.yaml"
            shell:
                "modelrecovery import-arrays --train {input.train} --test {input.test}"
                " --objects {input.objects} --out-dir {params.outdir} 2> {log}"
