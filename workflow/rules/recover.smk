# Stage 4: the fan-out. Per generator × training size × seed, refit every candidate
# (λ grid × folds, batched in one kernel call per candidate) to the simulated data.


rule recover:
    input:
        objects=f"{WORLD}/objects.parquet",
        shard=exp_path("simulated", "{generator}", "seed{seed}.parquet"),
        candidates=[features_path(m) for m in CANDIDATES],
    output:
        exp_path("recovery", "{generator}", "n{n}", "seed{seed}.parquet"),
    params:
        fit=get_fit_args,
        candidates=get_candidate_args,
        eval_fraction=config["simulation"]["eval_fraction"],
    threads: config["fitting"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    log:
        log_path("recover", "{generator}.n{n}.seed{seed}"),
    benchmark:
        bench_path("recover", "{generator}.n{n}.seed{seed}")
    conda:
        "../../envs/modelrecovery.yaml"
    shell:
        "modelrecovery recover --objects {input.objects:q} --shard {input.shard:q}"
        " --candidates {params.candidates:q} --n-train {wildcards.n:q}"
        " --experiment {wildcards.experiment:q} --generator {wildcards.generator:q}"
        " --seed {wildcards.seed:q} --eval-fraction {params.eval_fraction:q} {params.fit:q}"
        " --threads {threads:q} --out {output:q} 2> {log:q}"
