"""The sweep file: a base spec, grid axes over its keys, random starts, and what "best" means.

name: seed_multistart
base: seed_iclv.yaml            # relative to the sweep file
axes:                            # any spec key, a list of values each; the runs are their product
  integration.n: [500, 1000]
starts: {count: 20, scale: 0.5, seed: 1}
criterion: loglikelihood         # or aic, bic; val_loss for a VAEP base (`workload: vaep`)
tolerance: 0.01                  # log-likelihood units: runs this close share an optimum
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gradfit.errors import SpecError
from gradfit.iclv.spec import ModelSpec
from gradfit.io.overrides import apply_overrides
from gradfit.sweep.workload import ICLV, Workload


class StartsSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: Annotated[int, Field(ge=1)] = Field(description="Number of starts; start 0 is the spec's own values.")
    scale: Annotated[float, Field(gt=0)] = Field(
        0.5, description="Start k >= 1: value + scale * max(|value|, 1) * N(0, 1), per free parameter, in bounds."
    )
    seed: int = Field(0, ge=0)


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Sweep name: its folder under the runs folder.")
    base: str = Field(description="The model spec every run starts from (path relative to the sweep file).")
    axes: dict[str, list[Any]] = Field(default_factory=dict, description="Dotted spec key -> values to try.")
    starts: StartsSpec | None = None
    criterion: str | None = Field(
        None,
        description="What ranks runs: loglikelihood, aic, bic (ICLV); val_loss, val_skill (VAEP). Default: the first.",
    )
    tolerance: Annotated[float, Field(gt=0)] = Field(0.01, description="LL units within which optima are one.")


class Combination(BaseModel):
    """One run of the sweep: its id, its grid values, its start number, and the --set overrides that make it."""

    key: str
    axes: dict[str, Any]
    start: int | None
    overrides: list[str]


def read_sweep(path: str | Path, workload: Workload = ICLV) -> tuple[SweepSpec, Path, BaseModel]:
    """The sweep file, the base file's path and the base, every axis value checked against the base.

    The sweep's criterion is filled in with the workload's default when the file names none.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: sweep file not found; check the path") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise SpecError(f"{path}: not valid YAML{where}; fix the syntax") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a sweep file is a mapping with name, base and axes; see docs/sweep.md")
    try:
        sweep = SweepSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError.from_validation(exc, str(path)) from None
    for axis, values in sweep.axes.items():
        if not values:
            raise SpecError(f"{path}: axes.{axis}: an empty list; give at least one value")
    criterion = sweep.criterion or workload.default_criterion
    if criterion not in workload.criteria:
        raise SpecError(
            f"{path}: criterion: {criterion!r} is not one of {', '.join(workload.criteria)} ({workload.name})"
        )
    sweep = sweep.model_copy(update={"criterion": criterion})
    if sweep.starts is not None and not workload.starts:
        raise SpecError(f"{path}: starts: random starts are for ICLV models; sweep a seed key as an axis instead")
    base_path = (path.parent / sweep.base).resolve()
    base = workload.read_base(base_path)
    for axis, values in sweep.axes.items():  # each value must make a valid base, before anything runs
        for value in values:
            try:
                apply_overrides(base, [_assignment(axis, value)], source=f"{path}: axes.{axis}", build=workload.build)
            except SpecError as exc:
                where = f"{path}: axes.{axis}"
                detail = str(exc).removeprefix(f"{where} with --set: ").removeprefix(f"{where}: ")
                raise SpecError(f"{where}: {detail.replace('--set ', 'value ', 1)}") from None
    return sweep, base_path, base


def _assignment(key: str, value: Any) -> str:
    return f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"


def random_start(base: ModelSpec, k: int, starts: StartsSpec) -> dict[str, float]:
    """Start values of start k for the free parameters (k = 0: the spec's own), inside their bounds."""
    rng = np.random.default_rng([starts.seed, k])
    out = {}
    for name, p in base.parameters.items():
        if p.fixed:
            continue
        value = float(p.start)
        if k > 0:
            value += starts.scale * max(abs(value), 1.0) * float(rng.standard_normal())
            lo = p.lower if p.lower is not None else -np.inf
            hi = p.upper if p.upper is not None else np.inf
            # strictly inside the bounds: an optimiser started on a bound can stall there
            margin = 1e-3 * (hi - lo) if np.isfinite(hi - lo) else 1e-3 * max(abs(value), 1.0)
            value = float(
                np.clip(value, lo + margin if np.isfinite(lo) else lo, hi - margin if np.isfinite(hi) else hi)
            )
        out[name] = value
    return out


def combinations(sweep: SweepSpec, base: BaseModel) -> list[Combination]:
    """Every run of the sweep, in a fixed order: the grid's product (first axis slowest) times the starts."""
    names = list(sweep.axes)
    grid = list(itertools.product(*(sweep.axes[n] for n in names))) or [()]
    starts = range(sweep.starts.count) if sweep.starts else [None]
    out = []
    for values in grid:
        axes = dict(zip(names, values, strict=True))
        for k in starts:
            overrides = [_assignment(n, v) for n, v in axes.items()]
            if k is not None:
                overrides += [f"parameters.{n}.start={v!r}" for n, v in random_start(base, k, sweep.starts).items()]
            parts = [f"{n}={v}" for n, v in axes.items()] + ([f"start={k}"] if k is not None else [])
            out.append(Combination(key="|".join(parts) or "base", axes=axes, start=k, overrides=overrides))
    return out
