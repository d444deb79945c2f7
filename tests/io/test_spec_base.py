"""`base:` in a spec file: a variant holds only what differs from the spec it extends."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import rich_spec
from gradfit.errors import SpecError
from gradfit.io.spec import read_spec


def _write(path: Path, tree: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(tree, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def base_file(tmp_path) -> Path:
    spec = rich_spec()
    spec["data"] = {**spec["data"], "path": "data.csv"}
    return _write(tmp_path / "models" / "base.yaml", spec)


def test_variant_merges_mappings_and_replaces_values(base_file, tmp_path):
    base = read_spec(base_file)
    variant = _write(
        tmp_path / "variants" / "mc.yaml",
        {"base": "../models/base.yaml", "name": "variant", "integration": {"n": 8, "type": "sobol"}},
    )
    spec = read_spec(variant)
    assert spec.name == "variant"
    assert (spec.integration.n, spec.integration.type) == (8, "sobol")
    # untouched keys of a merged mapping come from the base
    assert spec.integration.seed == base.integration.seed
    assert spec.indicators == base.indicators and spec.parameters == base.parameters
    # the base's relative data path is relative to the base's folder, not the variant's
    assert spec.data.path == str((tmp_path / "models" / "data.csv").resolve())


def test_variant_may_replace_one_parameter(base_file, tmp_path):
    params = read_spec(base_file).parameters
    name = next(n for n, p in params.items() if not p.fixed and p.lower is None and p.upper is None)
    variant = _write(tmp_path / "v.yaml", {"base": "models/base.yaml", "parameters": {name: 0.25}})
    spec = read_spec(variant)
    assert spec.parameters[name].start == 0.25
    assert len(spec.parameters) == len(params)


def test_chained_bases(base_file, tmp_path):
    _write(tmp_path / "models" / "mid.yaml", {"base": "base.yaml", "integration": {"n": 12}})
    top = _write(tmp_path / "top.yaml", {"base": "models/mid.yaml", "integration": {"seed": 5}})
    spec = read_spec(top)
    assert (spec.integration.n, spec.integration.seed) == (12, 5)


@pytest.mark.parametrize(
    "files, fragment",
    [
        ({"a.yaml": {"base": "a.yaml"}}, "cannot extend itself"),
        ({"a.yaml": {"base": "b.yaml"}, "b.yaml": {"base": "a.yaml"}}, "cannot extend itself"),
        ({"a.yaml": {"base": "missing.yaml"}}, "missing.yaml: spec file not found (the base of"),
        ({"a.yaml": {"base": 3}}, "base: expected the path of another spec file"),
    ],
)
def test_bad_base_is_a_one_line_error(tmp_path, files, fragment):
    for name, tree in files.items():
        _write(tmp_path / name, tree)
    with pytest.raises(SpecError) as info:
        read_spec(tmp_path / "a.yaml")
    assert fragment in str(info.value) and "\n" not in str(info.value)
