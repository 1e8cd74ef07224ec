# modelrecovery: model-recovery experiments for representational alignment.
# The science lives in the `modelrecovery` package; rules call its CLI.
from snakemake.utils import min_version, validate

min_version("9.0")


# The embedded default, only when no --configfile/--config was given: Snakemake would
# otherwise deep-merge it under the user's config (adding its experiments and world).
if not config:

    configfile: "config/config.yaml"



validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/align.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/recover.smk"
include: "workflow/rules/analyse.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        get_final_output(),
    default_target: True
