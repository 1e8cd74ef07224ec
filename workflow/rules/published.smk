# The published study beside this one (config key published_results): its results
# database as tables and its recovery curves per generator beside this study's.
# Command: src/modelrecovery/cli/published.py (import-published); the work:
# src/modelrecovery/importers/published.py, src/modelrecovery/analysis/published.py.

if PUBLISHED:

    rule published_comparison:
        input:
            database=PUBLISHED,
            curves=expand(exp_path("tables", "generator_curves.parquet"), experiment=EXPERIMENTS),
        output:
            **table_outputs(["published_curves"], experiment=None),
            **figure_outputs(
                {"published_comparison": "published_comparison"},
                subcategory="Published study",
                experiment=None,
            ),
        log:
            "logs/comparison/published_comparison.log",
        benchmark:
            "logs/benchmarks/comparison/published_comparison.tsv"
        conda:
            "../../envs/modelrecovery.yaml"
        resources:
            mem_mb=scaled(2000),
            runtime=scaled(20),
        params:
            parquet=out_flags("parquet"),
            csv=out_flags("csv"),
            png=out_flags("png"),
            svg=out_flags("svg"),
        shell:
            "modelrecovery import-published --database {input.database:q}"
            " --our-curves {input.curves:q}"
            " --out-parquet {params.parquet:q} --out-csv {params.csv:q}"
            " --out-png {params.png:q} --out-svg {params.svg:q} 2> {log:q}"
