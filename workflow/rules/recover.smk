# Stage 4: the fan-out. Per design × generator × training size, refit every candidate
# (λ grid × folds, one kernel call per seed's dataset) to each seed's simulated data; one
# process serves every seed, so a job's start-up is paid once per size, not per seed.


rule recover:
    input:
        objects=f"{WORLD}/objects.parquet",
        shards=expand(exp_path("simulated", "{design}", "{generator}", "seed{seed}.parquet"),
                      seed=SEEDS, allow_missing=True),
        candidates=[features_path(m) for m in CANDIDATES],
    output:
        expand(exp_path("recovery", "{design}", "{generator}", "n{n}", "seed{seed}.parquet"),
               seed=SEEDS, allow_missing=True),
    params:
        fit=get_fit_args,
        candidates=get_candidate_args,
        seeds=SEEDS,
        eval_fraction=config["simulation"]["eval_fraction"],
    threads: config["fitting"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    log:
        log_path("recover", "{design}.{generator}.n{n}"),
    benchmark:
        bench_path("recover", "{design}.{generator}.n{n}")
    conda:
        "../../envs/modelrecovery.yaml"
    shell:
        "modelrecovery recover --objects {input.objects:q} --shard {input.shards:q}"
        " --seed {params.seeds:q} --out {output:q}"
        " --candidates {params.candidates:q} --n-train {wildcards.n:q}"
        " --experiment {wildcards.experiment:q} --design {wildcards.design:q}"
        " --generator {wildcards.generator:q} --eval-fraction {params.eval_fraction:q}"
        " {params.fit:q} --threads {threads:q} 2> {log:q}"
