"""The Workflow Catalog's usage: ``snakedeploy deploy-workflow``, then Snakemake in the
deployed folder, where the workflow runs as a module of the user's own Snakefile."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from conftest import base_config, cli_path, fresh_clone, run_snakemake, tool_env

pytestmark = pytest.mark.workflow


def test_snakedeploy_deployment_dry_runs_and_runs(tmp_path):
    clone = fresh_clone(tmp_path / "modelrecovery")
    dest = tmp_path / "my-study"
    deploy = subprocess.run([cli_path("snakedeploy"), "deploy-workflow", str(clone), str(dest),
                             "--tag", "v0"], cwd=tmp_path, env=tool_env(),
                            capture_output=True, text=True, timeout=120)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    snakefile = dest / "workflow" / "Snakefile"
    text = snakefile.read_text()
    assert "use rule * from modelrecovery" in text, text
    # snakedeploy's local provider declares the module's Snakefile as the bare relative
    # path "workflow/Snakefile", which Snakemake resolves against the deployed Snakefile's
    # own folder; a GitHub source gives github("owner/modelrecovery", path=...). Point it
    # at the clone, as that declaration would point at the repository.
    assert '"workflow/Snakefile"' in text, text
    snakefile.write_text(text.replace('"workflow/Snakefile"',
                                      repr(str(clone / "workflow" / "Snakefile"))))
    # The catalog copies config/ and profiles/ for the user to edit: the test study here.
    assert (dest / "config" / "config.yaml").is_file()
    assert (dest / "profiles" / "default" / "config.yaml").is_file()
    cfg = base_config()
    cfg["world"]["synthetic"]["models"] = cfg["world"]["synthetic"]["models"][:2]
    cfg["simulation"]["seeds"] = 1
    (dest / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    dry = run_snakemake(dest, "-n")
    assert dry.returncode == 0, dry.stderr[-4000:]
    # The deployed folder holds none of the workflow's files; it applies the workflow
    # profile it was given and finds the rules, schema and helpers inside the module.
    assert "workflow specific profile profiles/default" in dry.stderr, dry.stderr[-2000:]
    stats = dry.stdout.split("Job stats:")[1]
    assert re.search(r"^recover\s+4$", stats, re.M), stats
    run = run_snakemake(dest, timeout=600)
    assert run.returncode == 0, run.stderr[-6000:]
    exp = dest / "results" / "tiny"
    assert (exp / "tables" / "summary.csv").is_file()
    assert (exp / "figures" / "recovery_curve.png").stat().st_size > 1000
    assert not (clone / "results").exists()  # the module writes only into the study
