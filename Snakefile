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
