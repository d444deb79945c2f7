"""A completed ICLV run brought back to life: its spec, estimates, robust covariance and a `Model` on its data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gradfit.estimate import covariances
from gradfit.iclv.spec import ModelSpec
from gradfit.io import spec_from_dict
from gradfit.model import Model
from gradfit.runs import CONFIG, COVARIANCE, RESULTS, RunError, RunFolder, file_sha256, resolve_run


@dataclass(frozen=True)
class FittedRun:
    run: RunFolder
    spec: ModelSpec
    results: dict
    model: Model
    params: dict[str, float]  # free parameter -> estimate
    cov: pd.DataFrame  # robust (sandwich) covariance of the free parameters; NaN where not computable
    warnings: tuple[str, ...] = field(default=())

    @property
    def theta(self) -> np.ndarray:
        return np.array([self.params[n] for n in self.model.parameter_names], dtype=float)


def run_spec(run: str | Path | RunFolder) -> ModelSpec:
    """The spec of a complete ICLV run (its config.yaml: the spec with --set applied)."""
    return _read(run if isinstance(run, RunFolder) else resolve_run(run))[0]


def _read(folder: RunFolder) -> tuple[ModelSpec, dict]:
    """A complete ICLV run's spec and results.json."""
    if not folder.complete:
        raise RunError(f"{folder.path}: the run is not complete (no {RESULTS}); finish or resume the fit first")
    raw = folder.read_config()
    results = folder.read_json(RESULTS)
    if not isinstance(raw, dict) or "workload" in raw or "estimates" not in results:
        raise RunError(f"{folder.path}: not an ICLV estimation run; predictions and reports need one")
    return spec_from_dict(raw, base_dir=folder.path, source=str(folder.file(CONFIG))), results


def load_fitted(run: str | Path, data: pd.DataFrame | None = None) -> FittedRun:
    """The complete ICLV run at `run` (a run folder, or a `latest` link), with a model on `data` (default: the
    data the run was fitted on). The robust covariance comes from the run's covariance.json; runs written before
    that file existed get it recomputed (Hessian and scores at the estimates)."""
    folder = resolve_run(run)
    spec, results = _read(folder)
    notes = []
    recorded = results.get("data_sha256")
    if data is None and recorded and file_sha256(spec.data.path) not in (None, recorded):
        notes.append(f"{spec.data.path} changed since the fit (its SHA-256 differs from the run's)")
    model = Model(spec, data=data)
    try:
        params = {n: float(results["estimates"][n]["value"]) for n in model.parameter_names}
    except (KeyError, TypeError) as exc:
        raise RunError(f"{folder.path}: {RESULTS} has no estimate of {exc}; the run does not match its spec") from None
    names = list(model.parameter_names)
    if folder.file(COVARIANCE).is_file():
        saved = folder.read_json(COVARIANCE)
        if saved.get("names") != names:
            raise RunError(f"{folder.file(COVARIANCE)}: its parameters differ from the run's spec")
        cov = np.array(saved["robust"], dtype=float)  # JSON null (not computable) -> NaN
    else:
        cov = covariances(model.hessian(params).to_numpy(), model.scores(params)).robust
        notes.append(f"no {COVARIANCE} in the run (written by older versions): robust covariance recomputed")
    return FittedRun(folder, spec, results, model, params, pd.DataFrame(cov, index=names, columns=names), tuple(notes))
