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

else:

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
