# Figures for the report: recovery curves and confusion matrices (PNG + SVG).
# Commands: src/modelrecovery/cli/report.py; the work: src/modelrecovery/analysis/plots.py.


rule plot:
    input:
        curve=exp_path("tables", "recovery_curve.parquet"),
        generator_curves=exp_path("tables", "generator_curves.parquet"),
        confusion=exp_path("tables", "confusion.parquet"),
    output:
        **figure_outputs(
            {
                "recovery_curve": "recovery_curve_figure",
                "confusion": "confusion_figure",
            },
            subcategory="Figures",
        ),
    log:
        log_path("plot", "plot"),
    benchmark:
        bench_path("plot", "plot")
    conda:
        "../../envs/modelrecovery.yaml"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(20),
    params:
        info=MODEL_INFO_FLAGS,
        png=out_flags("png"),
        svg=out_flags("svg"),
    shell:
        "modelrecovery plot --curve {input.curve:q} --generator-curves {input.generator_curves:q}"
        " --confusion {input.confusion:q} --experiment {wildcards.experiment:q} {params.info:q}"
        " --out-png {params.png:q} --out-svg {params.svg:q} 2> {log:q}"
