# Stage 4: the fan-out. Per generator × training size × seed, refit every candidate (λ
# grid × folds) to each design's simulated data; one process and, up to 2^20 training
# triplets, one kernel call serve them all, so a job's start-up and the solver's
# per-iteration cost are paid once per seed, not per dataset. One job per seed: raising
# simulation.seeds adds jobs and leaves the finished seeds' fits alone. Beside each
# dataset's rows: the generator's own refitted transform (parameter recovery).
# Commands: src/modelrecovery/cli/recover.py; the work: src/modelrecovery/recover/
# (refit.py, selection.py, parameters.py), src/modelrecovery/fitting/.


rule recover:
    input:
        objects=f"{WORLD}/objects.parquet",
        shards=get_recovery_shards,
        candidates=[features_path(m) for m in CANDIDATES],
        generator=get_generator_file,
    output:
        fits=expand(
            exp_path("recovery", "{design}", "{generator}", "n{n}", "seed{seed}.parquet"),
            design=DESIGNS,
            allow_missing=True,
        ),
        parameters=expand(
            exp_path("parameters", "{design}", "{generator}", "n{n}", "seed{seed}.parquet"),
            design=DESIGNS,
            allow_missing=True,
        ),
    log:
        log_path("recover", "{generator}.n{n}.seed{seed}"),
    benchmark:
        bench_path("recover", "{generator}.n{n}.seed{seed}")
    conda:
        "../../envs/modelrecovery.yaml"
    threads: config["fitting"]["threads"]
    resources:
        **GPU_REQUEST,
        mem_mb=scaled(FIT_MEM_MB),
        runtime=scaled(60),
    params:
        fit=get_fit_args,
        candidates=get_candidate_args,
        designs=DESIGNS,
        seeds=lambda wildcards: [wildcards.seed] * len(DESIGNS),
        eval_fraction=config["simulation"]["eval_fraction"],
        protocol=config["simulation"]["protocol"],
    shell:
        "modelrecovery recover --objects {input.objects:q} --shard {input.shards:q}"
        " --design {params.designs:q} --seed {params.seeds:q} --out {output.fits:q}"
        " --generator-file {input.generator:q} --out-parameters {output.parameters:q}"
        " --candidates {params.candidates:q} --n-train {wildcards.n:q}"
        " --experiment {wildcards.experiment:q} --generator {wildcards.generator:q}"
        " --eval-fraction {params.eval_fraction:q} --protocol {params.protocol:q}"
        " {params.fit:q} --threads {threads:q}"
        " 2> {log:q}"
