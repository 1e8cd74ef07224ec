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
        "modelrecovery recover --objects {input.objects} --shard {input.shard}"
        " --candidates {params.candidates} --n-train {wildcards.n}"
        " --experiment {wildcards.experiment} --generator {wildcards.generator}"
        " --seed {wildcards.seed} --eval-fraction {params.eval_fraction} {params.fit}"
        " --threads {threads} --out {output} 2> {log}"
