"""The documentation keeps up with the code: every config key is documented, the docs
speak of the project in the present tense, and their relative links resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = sorted((ROOT / "workflow" / "schemas").glob("*.yaml"))
CONFIG_README = ROOT / "config" / "README.md"

# The documents that describe the project (CHANGELOG.md, its history, is exempt).
DOCS = sorted({
    ROOT / "README.md",
    CONFIG_README,
    ROOT / "benchmarks" / "README.md",
    *(ROOT / "docs").glob("*.md"),
    *(ROOT / "workflow" / "report").glob("*.rst"),
})

# Words and phrases of a development diary: how or when the project came to be.
DIARY = [
    r"\bsessions?\b",
    r"\bnew in\b",
    r"\bearlier (session|run|version|commit|form|kernel|solver)s?\b",
    r"\bin an earlier\b",
    r"\bused to\b",
    r"\bno longer\b",
    r"\bpreviously\b",
    r"\bformerly\b",
    r"\buntil recently\b",
    r"\bnow\b",
    r"\bwe (tried|found|changed|added|removed)\b",
    r"\b(was|were|has been|have been) (changed|fixed|added|removed|replaced|dropped|introduced|rewritten)\b",
    r"\b(tried|taken up) again\b",
    r"\bbefore (the|this|that) (change|commit|fix)\b",
    r"\bthis VM\b",
    r"\bprevious commit\b",
]


def _resolve(node: dict, root: dict) -> dict:
    ref = node.get("$ref") if isinstance(node, dict) else None
    if isinstance(ref, str) and ref.startswith("#/"):
        target = root
        for part in ref[2:].split("/"):
            target = target[part]
        return {**_resolve(target, root), **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def key_paths(node: dict, root: dict, prefix: str = "") -> set[str]:
    """Every property key of a schema as a dotted path: ``*`` for a map's entries
    (additionalProperties/patternProperties that are objects with properties), ``[]``
    for a list whose items are objects."""
    node = _resolve(node, root)
    if not isinstance(node, dict):
        return set()
    out: set[str] = set()
    for name, sub in (node.get("properties") or {}).items():
        path = f"{prefix}.{name}" if prefix else name
        out.add(path)
        out |= key_paths(sub, root, path)
    maps = [node.get("additionalProperties"), *(node.get("patternProperties") or {}).values()]
    for sub in maps:
        if isinstance(sub, dict) and prefix:
            out |= key_paths(sub, root, f"{prefix}.*")
    items = node.get("items")
    if isinstance(items, dict) and prefix:
        out |= key_paths(items, root, f"{prefix}[]")
    for combo in ("allOf", "anyOf", "oneOf"):
        for sub in node.get(combo) or []:
            out |= key_paths(sub, root, prefix)
    for branch in ("if", "then", "else"):
        if isinstance(node.get(branch), dict):
            out |= key_paths(node[branch], root, prefix)
    return out


def schema_keys() -> set[str]:
    keys: set[str] = set()
    for path in SCHEMAS:
        schema = yaml.safe_load(path.read_text())
        keys |= key_paths(schema, schema)
    return keys


def undocumented(keys: set[str], text: str) -> list[str]:
    return sorted(k for k in keys if f"`{k}`" not in text)


def test_schema_walk_finds_nested_keys():
    keys = schema_keys()
    assert SCHEMAS, "no schema under workflow/schemas"
    for key in ("fitting.max_iter", "design.pool_factor", "world.things.features.*.path",
                "experiments.*.method", "world.synthetic.models[].name", "designs"):
        assert key in keys, key


def test_every_config_key_is_documented():
    missing = undocumented(schema_keys(), CONFIG_README.read_text())
    assert not missing, f"config/README.md does not document: {missing}"


def test_a_missing_key_is_caught():
    text = CONFIG_README.read_text()
    assert undocumented({"fitting.max_iter"}, text.replace("`fitting.max_iter`", "")) \
        == ["fitting.max_iter"]


def test_no_undocumented_keys_in_the_readme():
    """Every dotted key the README's tables name exists in the schema."""
    keys = schema_keys()
    named = set(re.findall(r"^\| `([^`]+)` \|", CONFIG_README.read_text(), re.M))
    assert named, "config/README.md has no key table"
    assert not sorted(named - keys), "config/README.md names keys the schema lacks"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_do_not_read_like_a_diary(doc: Path):
    hits = []
    for number, line in enumerate(doc.read_text().splitlines(), 1):
        for pattern in DIARY:
            if re.search(pattern, line, re.IGNORECASE):
                hits.append(f"{doc.relative_to(ROOT)}:{number}: {pattern}: {line.strip()}")
    assert not hits, "history belongs in CHANGELOG.md:\n" + "\n".join(hits)


def test_diary_patterns_catch_diary_sentences():
    for sentence in ("measured in session 17", "new in this release", "it used to crash",
                     "the kernel now returns W = 0", "an earlier session tried it",
                     "the search was changed to bracket"):
        assert any(re.search(p, sentence, re.IGNORECASE) for p in DIARY), sentence


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", [d for d in DOCS if d.suffix == ".md"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path):
    broken = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0]
        if path and not (doc.parent / path).exists():
            broken.append(target)
    assert not broken, f"{doc.relative_to(ROOT)}: broken links {broken}"


PATH_REF = re.compile(r"`((?:src|workflow|benchmarks|scripts|profiles|config|tests|envs|docs)"
                      r"/[^`\s]*)`")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_repository_paths_exist(doc: Path):
    """A path into the repository written in backticks names a file or folder that exists
    (paths with placeholders such as <model>, * or {n} are skipped)."""
    missing = []
    for ref in PATH_REF.findall(doc.read_text()):
        if re.search(r"[<>*{}…]|\.\.\.", ref):
            continue
        for part in ref.split(", "):
            if not (ROOT / part.rstrip("/.:")).exists():
                missing.append(ref)
    assert not missing, f"{doc.relative_to(ROOT)} names missing paths: {missing}"
