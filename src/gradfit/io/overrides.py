"""`--set KEY=VALUE` overrides on top of a validated spec: flags > spec file > built-in defaults.

The spec is validated first (so a mistake in the file is reported against the file), then dumped with every
default filled in; each override replaces one value of that dump, and the result is validated again. A key
must already exist in the dump: an override can change a setting, not invent one, so a typo is an error that
lists the closest keys instead of a silently ignored value.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel

from gradfit.errors import SpecError
from gradfit.io.spec import spec_from_dict


def parse_assignment(text: str) -> tuple[list[str], Any]:
    """'a.b.c=value' -> (['a', 'b', 'c'], value parsed as a YAML scalar or flow collection)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise SpecError(f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. --set integration.n=2000")
    if not raw.strip():
        raise SpecError(f"--set {text!r}: no value after '='; give one, e.g. --set {key}=1")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise SpecError(f"--set {text!r}: the value is not valid YAML; quote text values") from None
    return key.split("."), value


def _assign(tree: dict, path: list[str], value: Any, text: str) -> None:
    node: Any = tree
    for depth, part in enumerate(path):
        here = ".".join(path[:depth]) or "the top level"
        if not isinstance(node, dict):
            raise SpecError(f"--set {text!r}: {here} is a value, not a section; set {here} itself")
        if part not in node:
            close = difflib.get_close_matches(part, list(map(str, node)), n=3, cutoff=0.5)
            hint = (
                f"; did you mean {', '.join(close)}?" if close else f"; known keys: {', '.join(map(str, node))[:200]}"
            )
            raise SpecError(f"--set {text!r}: unknown key {part!r} under {here}{hint}")
        if depth == len(path) - 1:
            node[part] = value
        else:
            node = node[part]


Spec = TypeVar("Spec", bound=BaseModel)


def apply_overrides(
    spec: Spec,
    assignments: Sequence[str],
    source: str = "spec",
    build: Callable[..., Spec] | None = None,
) -> Spec:
    """A new spec with each 'dotted.key=value' applied in order (later ones win).

    `build(tree, source=...)` validates the changed tree: an ICLV model spec by default; other workloads
    pass their own (e.g. the VAEP config's `config_from_dict`).
    """
    if not assignments:
        return spec
    tree = spec.model_dump(mode="json")
    for text in assignments:
        path, value = parse_assignment(text)
        _assign(tree, path, value, text)
    # The data paths in the dump are already absolute, so no base folder is needed.
    return (build or spec_from_dict)(tree, source=f"{source} with --set")


def read_config(path: str | Path, overrides: Sequence[str], build: Callable[..., Spec]) -> Spec:
    """A workload's config file (YAML) validated by `build(raw, base_dir=..., source=...)`, then --set overrides."""
    from gradfit.io.spec import load_yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: config file not found; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read the config file ({exc}); save it as UTF-8 text") from None
    config = build(load_yaml(text, str(path)), base_dir=path.parent, source=str(path))
    return apply_overrides(config, overrides, source=str(path), build=build)
