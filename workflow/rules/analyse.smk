# Stage 5: aggregate recovery rows into curves, confusion matrices and the summary.

TABLES = [
    "scores",
    "outcomes",
    "recovery_curve",
    "generator_curves",
    "confusion",
    "summary",
    "alignment",
]


rule aggregate:
    input:
        fits=get_recovery_rows,
        generators=get_generator_sidecars,
    output:
        parquet=expand(exp_path("tables", "{table}.parquet"), table=TABLES, allow_missing=True),
        csv=[
            report(
                exp_path("tables", f"{table}.csv"),
                caption=f"../report/{table}.rst",
                category="{experiment}",
                subcategory="Tables",
            )
            for table in TABLES
        ],
    params:
        outdir=output_dir("parquet"),
    log:
        log_path("aggregate", "aggregate"),
    conda:
        "../../envs/modelrecovery.yaml"
    shell:
        "modelrecovery aggregate --fits {input.fits} --generators {input.generators}"
        " --out-dir {params.outdir} 2> {log}"
