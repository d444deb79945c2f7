"""The documentation cannot go stale silently: schema file, spec reference, example spec, import layers."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from gradfit.iclv.spec import ModelSpec, validate
from gradfit.io import write_schema

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SRC = ROOT / "src" / "gradfit"


def _field_names(schema: dict) -> set[str]:
    """Every property name anywhere in a JSON schema (top level, nested objects and $defs)."""
    names: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                names.update(props)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return names


def test_schema_file_is_up_to_date(tmp_path):
    fresh = tmp_path / "spec.schema.json"
    write_schema(fresh)
    committed = DOCS / "spec.schema.json"
    assert committed.read_text(encoding="utf-8") == fresh.read_text(encoding="utf-8"), (
        "docs/spec.schema.json is stale; regenerate it with "
        "`python -c 'from gradfit.io import write_schema; write_schema(\"docs/spec.schema.json\")'`"
    )


def test_spec_reference_names_every_key():
    text = (DOCS / "spec.md").read_text(encoding="utf-8")
    names = _field_names(ModelSpec.model_json_schema())
    assert {"name", "data", "person", "loadings", "between", "tolerance"} <= names  # the walk works
    missing = sorted(n for n in names if f"`{n}`" not in text)
    assert not missing, f"docs/spec.md does not document these spec keys (as `key`): {missing}"


def _yaml_blocks(text: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", text, flags=re.S)


def test_spec_reference_example_is_valid():
    blocks = _yaml_blocks((DOCS / "spec.md").read_text(encoding="utf-8"))
    # a variant (`base: ...`) is complete only together with its base file
    complete = [b for b in blocks if re.search(r"^name:", b, flags=re.M) and not re.search(r"^base:", b, flags=re.M)]
    assert complete, "docs/spec.md has no complete example spec (a ```yaml block with `name:`)"
    for block in complete:
        spec = validate(yaml.safe_load(block), source="docs/spec.md example")
        assert spec.choice is not None and spec.indicators and spec.latent_variables


# Which top-level parts of the package each part may import (docs/architecture.md, "Layers").
ALLOWED = {
    "errors": set(),
    "core": {"errors"},
    "expr": {"errors"},
    "kernels": set(),
    "iclv": {"errors", "core", "expr", "kernels"},
    "estimate": {"errors"},
    "io": {"errors", "expr", "iclv"},
    "runtime": set(),
    "_version": set(),
    "placement": {"errors", "iclv"},
    "runs": {"errors", "io", "estimate", "_version"},
    "sweep": {"errors", "iclv", "io"},
    "vaep": {"errors"},
    "bilm": {"errors"},
    "train": {"errors", "vaep", "bilm"},
    "model": {"errors", "core", "iclv", "estimate", "io", "placement", "runtime"},
    "diagnose": {"errors", "model"},
    "bench": {"errors", "iclv", "model", "runtime"},
    "predict": {"errors", "expr", "iclv", "io", "estimate", "model", "runs"},
    "report": {"errors", "expr", "iclv", "io", "estimate", "model", "runs", "sweep", "predict"},
    "cli": {
        "errors",
        "iclv",
        "estimate",
        "io",
        "model",
        "runs",
        "sweep",
        "diagnose",
        "bench",
        "train",
        "vaep",
        "bilm",
        "predict",
        "report",
        "__init__",
    },
    "__init__": {"errors", "iclv", "estimate", "io", "model", "runtime", "_version"},
    "__main__": {"cli"},
}


def _part(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_parts(path: Path) -> set[str]:
    parts: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        modules = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        for module in modules:
            pieces = module.split(".")
            if pieces[0] == "gradfit":
                parts.add(pieces[1] if len(pieces) > 1 else "__init__")
    return parts


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_follow_the_documented_layers(path):
    part = _part(path)
    assert part in ALLOWED, f"{part!r} is a new part of the package: add it to docs/architecture.md and here"
    wrong = sorted(p for p in _imported_parts(path) - {part} if p not in ALLOWED[part])
    assert not wrong, f"{path.relative_to(SRC)} imports {wrong}, against the layers in docs/architecture.md"


def test_the_package_version_is_the_one_pyproject_declares():
    from gradfit._version import __version__

    declared = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(encoding="utf-8"), flags=re.M)
    assert declared and declared.group(1) == __version__
