"""The rules' conda environment, envs/modelrecovery.yaml, as `snakemake --sdm conda` builds it.

Snakemake (deployment/conda.py, Env.create) copies the yaml to <conda-prefix>/<hash>.yaml
and runs `conda env create --file <that copy>`; conda runs the yaml's pip section with
`pip install -U -r condaenv.*.requirements.txt` in the copy's folder. Snakemake then copies
envs/modelrecovery.post-deploy.sh to <conda-prefix>/<hash>.post-deploy.sh and runs it with
the environment activated, in its own working directory.

Conda's channels cannot be reached here, so a stand-in `conda` on PATH takes conda's place:
for `env create` it makes a venv that sees the packages the channels would provide (this
interpreter's, less modelrecovery itself) and runs the pip section exactly as conda does,
offline. Everything else is real: Snakemake's copies, hash, post-deploy lookup and run, the
job's activation, pip and the package's build. What is not run is conda solving the yaml's
channel dependencies; the first test checks that they cover pyproject.toml's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[2]
ENV_FILE = REPO / "envs" / "modelrecovery.yaml"
POST_DEPLOY = REPO / "envs" / "modelrecovery.post-deploy.sh"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"

# PyPI name -> conda-forge/bioconda name, where they differ.
CONDA_NAMES = {
    "torch": "pytorch",
    "matplotlib": "matplotlib-base",
    "snakemake": "snakemake-minimal",
}
BIOCONDA_ONLY = {"snakemake-minimal"}


def _env_spec() -> dict:
    return yaml.safe_load(ENV_FILE.read_text())


def _conda_deps(spec: dict) -> dict[str, SpecifierSet]:
    """The yaml's conda dependencies as name -> version specifiers (`=3.11` as `==3.11.*`)."""
    deps = {}
    for dep in spec["dependencies"]:
        if not isinstance(dep, str):
            continue
        name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(.*)", dep.split("::")[-1]).groups()
        version = version.replace(" ", "")
        if re.fullmatch(r"=[^=<>!]+", version):
            version = f"=={version[1:]}.*"
        deps[name.lower()] = SpecifierSet(version)
    return deps


def _pip_deps(spec: dict) -> list[str]:
    sections = [dep["pip"] for dep in spec["dependencies"] if isinstance(dep, dict)]
    return [line for section in sections for line in section]


def test_env_covers_pyproject_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    spec = _env_spec()
    conda, pip = _conda_deps(spec), {}
    for line in _pip_deps(spec):
        if not line.startswith("-"):  # options such as -e PATH name no requirement
            req = Requirement(line)
            pip[req.name.lower()] = req.specifier

    # The yaml's python (`python=3.11`) satisfies requires-python.
    python = conda.get("python")
    assert python is not None, "the environment pins no python"
    requires = SpecifierSet(project["project"]["requires-python"])
    assert requires.contains(next(iter(python)).version.removesuffix(".*")), (python, requires)

    missing = []
    for line in project["project"]["dependencies"]:
        req = Requirement(line)
        name = req.name.lower()
        if name in pip:
            found = pip[name]
        else:
            found = conda.get(CONDA_NAMES.get(name, name))
        if found is None or found != req.specifier:
            missing.append(f"{line} (environment: {found})")
    assert not missing, f"not in {ENV_FILE.name} as in pyproject.toml: {missing}"

    # The post-deploy script builds the package without isolation, from the environment.
    for line in project["build-system"]["requires"]:
        req = Requirement(line)
        assert conda.get(req.name.lower()) == req.specifier, f"{line} missing"
    assert "pip" in conda

    channels = spec["channels"]
    for name in BIOCONDA_ONLY & set(conda):
        assert "bioconda" in channels, f"{name} is on bioconda, not in {channels}"


def test_env_names_no_path():
    """The pip section runs in the folder of Snakemake's copy, so a path there points into
    the conda prefix, not into the repository."""
    for line in _pip_deps(_env_spec()):
        req = line.split("#")[0].strip()
        assert not re.match(r"(-e|--editable)\b|[./~]|file:", req), f"path in pip: {line}"


# -- Snakemake's real deployment, with a stand-in for conda's solver -------------------

STAND_IN_CONDA = r'''
"""Stand-in for conda: answers Snakemake's questions; `env create` builds a venv on the
packages the channels would provide, then runs the pip section as conda does."""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent
PACKAGES = (ROOT / "channel-packages.txt").read_text().strip()
args = sys.argv[1:]
if args == ["info", "--json"]:
    print(json.dumps({"conda_prefix": str(ROOT), "platform": "linux-64"}))
elif args == ["--version"]:
    print("conda 25.1.1")
elif args[:2] == ["config", "--get"]:
    print(json.dumps({"get": {"channel_priority": "strict"}}))
elif args[:1] == ["clean"]:
    pass
elif args[:2] == ["env", "create"]:
    file = args[args.index("--file") + 1]
    prefix = Path(args[args.index("--prefix") + 1])
    spec = yaml.safe_load(open(file))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    site = prefix / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    (site / "site-packages" / "channel-packages.pth").write_text(PACKAGES + "\n")
    pip = [line for dep in spec["dependencies"] if isinstance(dep, dict)
           for line in dep["pip"]]
    if pip:
        # conda/env/installers/pip.py: the requirements file and pip's working directory
        # are the env file's folder. --no-index: offline, on the packages above.
        workdir = os.path.dirname(os.path.abspath(file))
        with tempfile.NamedTemporaryFile("w", prefix="condaenv.",
                                         suffix=".requirements.txt", dir=workdir,
                                         delete=False) as req:
            req.write("\n".join(pip))
        try:
            done = subprocess.run([str(prefix / "bin" / "python"), "-m", "pip", "install",
                                   "-U", "-r", req.name, "--exists-action=b", "--no-index"],
                                  cwd=workdir)
        finally:
            os.remove(req.name)
        sys.exit(done.returncode)
else:
    sys.exit(f"stand-in conda: unexpected arguments {args}")
'''

STAND_IN_ACTIVATE = """\
# Stand-in for conda's activate script: `source activate PREFIX`.
CONDA_PREFIX="$1"; export CONDA_PREFIX
PATH="$1/bin:$PATH"; export PATH
"""

# The rules' own reference: workflow/rules/*.smk -> ../../envs/modelrecovery.yaml.
PROBE_RULE = """\
rule probe:
    output:
        "probe.json",
    conda:
        "../../envs/modelrecovery.yaml"
    shell:
        "modelrecovery --help > /dev/null && python -c 'import json, sys, modelrecovery;"
        " print(json.dumps([modelrecovery.__file__, sys.prefix]))' > {output}"
"""


@pytest.fixture(scope="module")
def conda_root(tmp_path_factory) -> Path:
    """A conda installation whose `conda` is the stand-in, and the channel packages: this
    interpreter's site-packages without modelrecovery (linked, so nothing is copied)."""
    root = tmp_path_factory.mktemp("conda")
    packages = root / "channel-packages"
    packages.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if "modelrecovery" in entry.name.lower() or entry.name == "__pycache__":
            continue
        (packages / entry.name).symlink_to(entry)
    (root / "channel-packages.txt").write_text(str(packages))
    (root / "bin").mkdir()
    (root / "conda.py").write_text(STAND_IN_CONDA)
    conda = root / "bin" / "conda"
    conda.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{root / "conda.py"}" "$@"\n')
    conda.chmod(0o755)
    (root / "bin" / "activate").write_text(STAND_IN_ACTIVATE)
    return root


def _checkout(root: Path) -> Path:
    """A checkout whose packaging, src/ and envs/ are this repository's (linked), with a
    workflow of one rule that uses the environment as the real rules do."""
    checkout = root / "checkout"
    (checkout / "workflow" / "rules").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "src", "envs"):
        (checkout / name).symlink_to(REPO / name)
    (checkout / "workflow" / "rules" / "probe.smk").write_text(PROBE_RULE)
    (checkout / "workflow" / "Snakefile").write_text('include: "rules/probe.smk"\n')
    return checkout


def _module_project(root: Path, checkout: Path) -> Path:
    """A project that uses the checkout's workflow as a module, so its working directory is
    not the checkout."""
    project = root / "project"
    project.mkdir()
    (project / "Snakefile").write_text(
        "module modelrecovery:\n"
        f"    snakefile: {str(checkout / 'workflow' / 'Snakefile')!r}\n\n"
        "use rule * from modelrecovery\n")
    return project


def _snakemake(workdir: Path, conda_root: Path, source: str | None
               ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "MODELRECOVERY_SOURCE", "CONDA_PREFIX")}
    env["PATH"] = os.pathsep.join([str(conda_root / "bin"), str(SNAKEMAKE.parent),
                                   env.get("PATH", "")])
    if source is not None:
        env["MODELRECOVERY_SOURCE"] = source
    cmd = [str(SNAKEMAKE), "--sdm", "conda", "--cores", "1", "--nocolor",
           "--workflow-profile", "none", "probe.json"]
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=180)


def _assert_deployed(workdir: Path, done: subprocess.CompletedProcess[str]) -> Path:
    """Snakemake copied both files into its conda prefix, the job ran in the environment
    and imported modelrecovery from this repository's src/."""
    assert done.returncode == 0, done.stdout + done.stderr
    prefix = workdir / ".snakemake" / "conda"
    [copy] = prefix.glob("*.yaml")
    env = copy.with_suffix("")
    assert copy.read_bytes() == ENV_FILE.read_bytes()
    assert Path(f"{env}.post-deploy.sh").read_bytes() == POST_DEPLOY.read_bytes()
    module_file, job_prefix = json.loads((workdir / "probe.json").read_text())
    assert Path(job_prefix).resolve() == env.resolve()
    assert Path(module_file).resolve() == REPO / "src" / "modelrecovery" / "__init__.py"
    assert (env / "bin" / "modelrecovery").exists()
    return env


@pytest.mark.workflow
def test_checkout_run_installs_the_repository(conda_root, tmp_path):
    """`snakemake --sdm conda` in the repository root: the working directory is the
    package's source."""
    checkout = _checkout(tmp_path)
    env = _assert_deployed(checkout, _snakemake(checkout, conda_root, source=None))
    # Editable: the environment follows the checkout's code.
    [pth] = (env / "lib").glob("python*/site-packages/__editable__.modelrecovery-*.pth")
    assert Path(pth.read_text().strip()).resolve() == REPO / "src"


@pytest.mark.workflow
def test_module_run_installs_the_given_source(conda_root, tmp_path):
    """Used as a module (the working directory is another project), the package comes from
    MODELRECOVERY_SOURCE."""
    project = _module_project(tmp_path, _checkout(tmp_path))
    _assert_deployed(project, _snakemake(project, conda_root, source=str(REPO)))


@pytest.mark.workflow
def test_module_run_without_source_stops_and_says_how(conda_root, tmp_path):
    project = _module_project(tmp_path, _checkout(tmp_path))
    done = _snakemake(project, conda_root, source=None)
    assert done.returncode != 0
    assert "MODELRECOVERY_SOURCE" in done.stdout + done.stderr
    assert not (project / "probe.json").exists()
    # Snakemake removes the environment it could not finish, so a rerun starts afresh.
    assert not [p for p in (project / ".snakemake" / "conda").iterdir() if p.is_dir()]
