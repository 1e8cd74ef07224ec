# modelrecovery's workflow, found by `snakemake` from the repository root. The rules are
# in workflow/ (the Workflow Catalog's layout, which snakedeploy and `module:` use); this
# file uses them as a module, as a deployed copy does, so both entry points run the same
# rules under the same names (docs/decisions.md, "A top-level Snakefile").
from snakemake.utils import min_version

min_version("9.0")


# A module takes its config from here: the study's default, unless the user gave one.
if not config and not workflow.configfiles:

    configfile: "config/config.yaml"


module modelrecovery:
    snakefile:
        "workflow/Snakefile"
    config:
        config


use rule * from modelrecovery


# Snakemake runs a module's onstart handlers not at all, so the host repeats the
# workflow's one start-up guard: --cores over a cluster executor would cap the threads
# of all running cluster jobs together at that number.
onstart:
    if workflow.non_local_exec and workflow.resource_settings.cores is not None:
        raise WorkflowError(
            f"--cores is set ({workflow.resource_settings.cores}) while jobs go to a "
            "cluster executor: Snakemake would cap the threads of all running jobs "
            "together at that number. Remove `cores:` from the cluster profile (or "
            "--cores from the command line); to limit concurrent cluster jobs, use "
            "--jobs."
        )
