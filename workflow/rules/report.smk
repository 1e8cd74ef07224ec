# Figures for the report: recovery curves and confusion matrices (PNG + SVG).


rule plot:
    input:
        curve=exp_path("tables", "recovery_curve.parquet"),
        generator_curves=exp_path("tables", "generator_curves.parquet"),
        confusion=exp_path("tables", "confusion.parquet"),
    output:
        curve=report(
            exp_path("figures", "recovery_curve.png"),
            caption="../report/recovery_curve_figure.rst",
            category="{experiment}",
            subcategory="Figures",
        ),
        curve_svg=exp_path("figures", "recovery_curve.svg"),
        confusion=report(
            exp_path("figures", "confusion.png"),
            caption="../report/confusion_figure.rst",
            category="{experiment}",
            subcategory="Figures",
        ),
        confusion_svg=exp_path("figures", "confusion.svg"),
    params:
        curve=lambda wildcards, output: output.curve[: -len(".png")],
        confusion=lambda wildcards, output: output.confusion[: -len(".png")],
    log:
        log_path("plot", "plot"),
    conda:
        "../../envs/modelrecovery.yaml"
    shell:
        "modelrecovery plot --curve {input.curve:q} --generator-curves {input.generator_curves:q}"
        " --confusion {input.confusion:q} --experiment {wildcards.experiment:q}"
        " --out-curve {params.curve:q} --out-confusion {params.confusion:q} 2> {log:q}"
