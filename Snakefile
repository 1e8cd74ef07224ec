# modelrecovery: model-recovery experiments for representational alignment.
# The science lives in the `modelrecovery` package; rules call its CLI.
import os
import sys

from snakemake.utils import min_version, validate

min_version("9.0")


# The embedded default, only when no --configfile/--config was given: Snakemake would
# otherwise deep-merge it under the user's config (adding its experiments and world).
if not config and not workflow.configfiles:

    configfile: "config/config.yaml"



# Every refusal of the config is one line naming the key, before any job runs; validate
# then fills the schema's defaults.
sys.path.insert(0, os.path.join(workflow.basedir, "workflow", "lib"))
from config_checks import refuse_bad_config

SCHEMA = os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml")
refuse_bad_config(config, SCHEMA, workflow.configfiles)
validate(config, SCHEMA)

# Snakemake applies profiles/default (the local settings) as the workflow profile on top
# of any --profile. Over a cluster executor its `cores: all` would cap the threads of all
# running cluster jobs together at this machine's core count, and its latency-wait and
# keep-going would replace the cluster profile's: refuse before anything is submitted.
# (Checked on start: the executor is not known yet while the Snakefile is read.)
onstart:
    if workflow.non_local_exec and workflow.resource_settings.cores is not None:
        raise WorkflowError(
            f"--cores is set ({workflow.resource_settings.cores}) while jobs go to a "
            "cluster executor: Snakemake would cap the threads of all running jobs "
            "together at that number. Usually profiles/default (the local settings: "
            "cores: all, latency-wait 5, keep-going off) was layered over the cluster "
            "profile: add --workflow-profile none, e.g. `snakemake --profile "
            "profiles/slurm --workflow-profile none`. To limit concurrent cluster jobs, "
            "use --jobs."
        )


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/align.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/recover.smk"
include: "workflow/rules/design.smk"
include: "workflow/rules/analyse.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        get_final_output(),
    default_target: True
