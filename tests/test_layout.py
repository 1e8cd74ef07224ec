"""The package is laid out as the study runs, and its map is true.

Imports run one way: the shared modules and the fitting kernel, then world, align,
simulate, recover, design, analysis, and the command line last. A stage never imports a
later one, no module is in an import cycle, and every path that docs/DESIGN.md and the
rule files' headers name exists. Imports are read from the source (function-local ones
included), so a lazy import cannot hide a wrong-way arrow.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from conftest import REPO

SRC = REPO / "src"
PACKAGE = SRC / "modelrecovery"

# The stages in the order the study runs them; a module belongs to the last entry that
# names it or a package above it.
STAGES: list[tuple[str, ...]] = [
    ("modelrecovery", "modelrecovery.errors", "modelrecovery.seeds", "modelrecovery.oddoneout",
     "modelrecovery.sampling", "modelrecovery.settings", "modelrecovery.io",
     "modelrecovery.importers"),
    ("modelrecovery.fitting",),
    ("modelrecovery.world",),
    ("modelrecovery.align",),
    ("modelrecovery.simulate",),
    ("modelrecovery.recover",),
    ("modelrecovery.design",),
    ("modelrecovery.analysis",),
    ("modelrecovery.cli", "modelrecovery.__main__"),
]


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (a name imported from a package counts as
    its submodule when one of that name exists)."""
    mods = modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            graph[name] |= {t for t in targets if t in mods and t != name}
    return graph


def stage(module: str) -> int:
    found = [i for i, names in enumerate(STAGES) for n in names
             if module == n or (n != "modelrecovery" and module.startswith(n + "."))]
    assert found, f"{module} belongs to no stage: add it to STAGES"
    return max(found)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_no_stage_imports_a_later_stage_or_the_cli():
    wrong = [f"{m} -> {t}" for m, targets in sorted(import_graph().items())
             for t in sorted(targets) if stage(t) > stage(m)]
    assert wrong == []


def test_the_checks_see_a_wrong_way_import_and_a_cycle():
    graph = {"modelrecovery.simulate": {"modelrecovery.analysis.aggregate"},
             "modelrecovery.analysis.aggregate": {"modelrecovery.simulate"}}
    assert stage("modelrecovery.analysis.aggregate") > stage("modelrecovery.simulate")
    assert cycles(graph) == [sorted(graph)]


def test_no_module_is_far_over_four_hundred_lines():
    long = {str(p.relative_to(REPO)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 420}
    assert long == {}


def named_paths(text: str) -> set[str]:
    """The package paths a document names: ``src/modelrecovery/...`` and, in a table or
    tree rooted there, ``cli/x.py`` or ``analysis/``."""
    full = set(re.findall(r"src/modelrecovery/[\w/]*\w(?:\.py|/)?", text))
    short = set(re.findall(r"`((?:[a-z_]+/)*[a-z_]+\.py|[a-z_]+/)`", text))
    # A path from the repository's root (`tests/test_layout.py`) is not the package's.
    short = {s for s in short if s.split("/")[0] not in ("tests", "workflow", "docs", "benchmarks")}
    return full | {f"src/modelrecovery/{s}" for s in short}


def rule_headers() -> dict[str, str]:
    """Each rule file's leading comment block."""
    out = {}
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        lines = path.read_text().splitlines()
        header = []
        for line in lines:
            if not line.startswith("#"):
                break
            header.append(line[1:])
        out[path.name] = " ".join(header)
    return out


@pytest.mark.parametrize("rule_file", sorted(rule_headers()))
def test_each_rule_file_names_its_commands_and_modules(rule_file):
    header = rule_headers()[rule_file]
    if rule_file == "common.smk":
        return
    paths = set(re.findall(r"src/modelrecovery/[\w/]*\w(?:\.py|/)?", header))
    # The one hop from a rule to its code: the CLI module, then the stage's modules,
    # written as a folder with its files in parentheses or as full paths.
    for folder, names in re.findall(r"(src/modelrecovery/[\w/]+/)\s*\(([^)]*)\)", header):
        paths |= {folder + n.strip() for n in names.split(",")}
    assert any(p.startswith("src/modelrecovery/cli/") for p in paths), header
    assert len(paths) >= 2, header
    missing = sorted(p for p in paths if not (REPO / p).exists())
    assert missing == [], f"{rule_file} names paths that do not exist: {missing}"


def test_the_design_document_names_only_paths_that_exist():
    text = (REPO / "docs" / "DESIGN.md").read_text()
    stages = text.split("## Stages")[1].split("## Layout")[0]
    paths = named_paths(stages)
    # The tree: each line's leading names under src/modelrecovery/.
    tree = stages.split("```")[1]
    for line in tree.splitlines()[2:]:
        lead = re.match(r"  ((?:[a-z_]+(?:\.py|/) ?)+)", line)
        if lead:
            paths |= {f"src/modelrecovery/{n}" for n in lead.group(1).split()}
    assert len(paths) > 30
    missing = sorted(p for p in paths if not (REPO / p).exists())
    assert missing == []
    # ...and every stage module appears in it.
    unnamed = sorted(str(p.relative_to(SRC / "modelrecovery")) for p in PACKAGE.rglob("*.py")
                     if p.name != "__init__.py" and p.parent == PACKAGE
                     and p.name not in stages and p.stem != "__main__")
    assert unnamed == []
