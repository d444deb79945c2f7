"""Spec files: YAML in, a validated `ModelSpec` out, with the data path resolved against the spec's folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from gradfit.errors import SpecError
from gradfit.iclv.spec import ModelSpec, validate


def read_spec(path: str | Path) -> ModelSpec:
    """Read and validate a YAML spec; relative data paths are resolved against the spec file's folder.

    A spec may start with `base: other.yaml` (relative to its own folder): it then holds only what differs
    from that spec. Mappings merge key by key, recursively; any other value (a number, a list, a formula)
    replaces the base's. Bases may themselves have a base.
    """
    path = Path(path)
    raw = _read_raw(path, ())
    return spec_from_dict(raw, base_dir=path.parent, source=str(path))


def _read_raw(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """The spec file as a dict, with its `base` chain merged in and every data path made absolute."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        where = f" (the base of {chain[-1]})" if chain else ""
        raise SpecError(f"{path}: spec file not found{where}; check the path") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: the spec file is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec file ({exc.strerror}); check the path") from None
    raw = load_yaml(text, str(path))
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a spec must be a YAML mapping with keys name, data, parameters, ...")
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("path"), str) and not Path(data["path"]).is_absolute():
        raw["data"] = {**data, "path": str((path.parent / data["path"]).resolve())}
    if "base" not in raw:
        return raw
    base = raw.pop("base")
    if not isinstance(base, str) or not base.strip():
        raise SpecError(f"{path}: base: expected the path of another spec file (relative to this one)")
    base_path = (path.parent / base).resolve()
    if base_path in chain or base_path == path.resolve():
        raise SpecError(f"{path}: base: {base!r} leads back to this file; a spec cannot extend itself")
    return _merge(_read_raw(base_path, (*chain, path.resolve())), raw)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_yaml(text: str, source: str = "spec") -> Any:
    """Parse YAML like `yaml.safe_load`, but a key repeated in one mapping is an error, not a silent overwrite."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_duplicate_keys(node, "", source, set())
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: {_yaml_problem(exc)}") from None
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or "invalid YAML"
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None and (mark is None or context_mark.line != mark.line):
        problem += f" ({context} at line {context_mark.line + 1})"
    if "'\\t'" in problem:  # PyYAML shows the character as its repr
        hint = "indent with spaces, not tabs"
    else:
        hint = "check the brackets, quotes and indentation there (quote text that contains ': ' or ' #')"
    return f"YAML syntax error{at}: {problem}; {hint}"


def _refuse_duplicate_keys(node: yaml.Node, where: str, source: str, seen_nodes: set[int]) -> None:
    """Walk the composed YAML tree; `where` is the dotted key of `node` (as in other messages)."""
    if id(node) in seen_nodes:  # an alias: checked where its anchor is (and YAML may be recursive)
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            if key.value in seen:
                place = where or "the top level"
                raise SpecError(
                    f"{source}: line {key.start_mark.line + 1}: duplicate key {key.value!r} in {place}; "
                    "remove or rename one"
                )
            seen.add(key.value)
            _refuse_duplicate_keys(value, f"{where}.{key.value}" if where else key.value, source, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicate_keys(item, f"{where}[{i}]", source, seen_nodes)


def spec_from_dict(raw: dict[str, Any], base_dir: str | Path = ".", source: str = "spec") -> ModelSpec:
    """Validate a dict (the same structure as the YAML file); data.path is made absolute from base_dir."""
    spec = validate(raw, source)
    data_path = Path(spec.data.path)
    if not data_path.is_absolute():
        data_path = (Path(base_dir) / data_path).resolve()
    return spec.model_copy(update={"data": spec.data.model_copy(update={"path": str(data_path)})})


def write_schema(path: str | Path) -> None:
    """Write the JSON Schema of the spec (docs/spec.schema.json is generated by this)."""
    schema = ModelSpec.model_json_schema()
    Path(path).write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
