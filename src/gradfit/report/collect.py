"""Everything a run's report shows, gathered into one plain structure: compute only, no formatting, no HTML.

The run's own files (results.json, history.csv, config.yaml) give the estimates, fit statistics and convergence;
the fitted model (`gradfit.predict.load_fitted`, which rebuilds the model on the run's data) gives the observed
and predicted indicator distributions, choice shares and posterior latent variables; a sweep folder around the
run gives its draw-stability study.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from gradfit.errors import GradfitError
from gradfit.expr import parse
from gradfit.iclv.spec import ModelSpec
from gradfit.runs import HISTORY, RESULTS, RunError, resolve_run
from gradfit.sweep.summary import draw_study, draw_study_plot

Group = Literal["structural", "measurement", "choice", "other"]
GROUPS: tuple[Group, ...] = ("structural", "measurement", "choice", "other")
SE_FIELDS = ("std_err", "robust_std_err", "bhhh_std_err")
TOP_CORRELATIONS = 10


def _quiet(_: str) -> None:
    pass


# -- parameter groups ---------------------------------------------------------------------------------------------


def parameter_groups(spec: ModelSpec) -> dict[str, Group]:
    """Each parameter's part of the model, from where the spec uses it.

    structural: latent-variable means and scales, correlations; measurement: indicator intercepts, scales,
    loadings and thresholds; choice: utilities and availabilities; other: used nowhere (e.g. only fixed).
    A parameter used in several parts goes to the first of structural, measurement, choice.
    """
    known = set(spec.parameters)
    uses: dict[Group, list[str]] = {"structural": [], "measurement": [], "choice": []}

    def coef(group: Group, value: float | str) -> None:
        if isinstance(value, str):
            uses[group].append(value)

    def formula(group: Group, text: str | float, where: str) -> None:
        if isinstance(text, str):
            uses[group].extend(sorted(parse(text, where=where).names))

    for name, lv in spec.latent_variables.items():
        formula("structural", lv.mean, f"latent_variables.{name}.mean")
        coef("structural", lv.scale)
    for corr in spec.correlations:
        coef("structural", corr.parameter)
    for ind in spec.indicators.values():
        for value in (ind.intercept, ind.scale, *ind.loadings.values()):
            coef("measurement", value)
    for thresholds in spec.thresholds.values():  # shared between indicators; every entry is measurement
        for value in thresholds.parameters:
            coef("measurement", value)
    if spec.choice is not None:
        for name, alt in spec.choice.alternatives.items():
            formula("choice", alt.utility, f"choice.alternatives.{name}.utility")
            formula("choice", alt.available, f"choice.alternatives.{name}.available")
    groups: dict[str, Group] = {}
    for group, names in uses.items():
        for name in names:
            if name in known:
                groups.setdefault(name, group)
    return {name: groups.get(name, "other") for name in spec.parameters}


# -- the report's data ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """One free parameter's row of results.json (None: not computable, e.g. a singular Hessian)."""

    name: str
    group: Group
    value: float | None
    std_err: float | None
    robust_std_err: float | None
    bhhh_std_err: float | None

    @property
    def t_stat(self) -> float | None:
        return _ratio(self.value, self.std_err)

    @property
    def robust_t_stat(self) -> float | None:
        return _ratio(self.value, self.robust_std_err)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not math.isfinite(a) or not math.isfinite(b) or b == 0:
        return None
    return a / b


@dataclass(frozen=True)
class DrawStudy:
    """The sweep's draw-stability study along one `.n` axis: its table and its plot (PNG bytes)."""

    axis: str
    table: pd.DataFrame  # one row per run: the axis, other axes, trial, loglikelihood, converged, this_run
    png: bytes
    source: str  # where the plot came from: the sweep's PNG, or re-rendered from sweep.json


@dataclass(frozen=True)
class SweepContext:
    name: str
    folder: Path
    runs: int  # combinations in the sweep
    finished: int
    axes: dict  # this run's axis values ({} when sweep.json does not list it yet)
    listed: bool  # whether sweep.json lists this run
    draw_studies: tuple[DrawStudy, ...]


@dataclass(frozen=True)
class ReportData:
    run: Path
    results: dict  # results.json as written
    spec: ModelSpec  # config.yaml
    finished: datetime | None  # when results.json was written
    estimates: tuple[Estimate, ...]  # free parameters, in results.json order
    fixed: dict[str, float]
    history: pd.DataFrame  # history.csv (may be empty)
    indicators: pd.DataFrame | None  # indicator, level, observed, predicted (discrete indicators); None: none
    continuous_indicators: tuple[str, ...]  # indicators without levels, not in `indicators`
    choice_shares: pd.DataFrame | None  # index alternative; observed, predicted; None: no choice model
    posterior: pd.DataFrame | None  # per person <LV>_mean, <LV>_sd; None: no latent variables
    correlations: tuple[tuple[str, str, float], ...]  # largest |robust correlation| between estimates
    sweep: SweepContext | None
    # the spec's `quantities` by the delta method: quantity, kind, estimate, se, delta_lo, delta_hi; None: none
    quantities: pd.DataFrame | None = None
    notes: dict[str, str] = field(default_factory=dict)  # section -> why it is empty or partial
    warnings: tuple[str, ...] = ()  # e.g. the data file changed since the fit

    def grouped(self) -> dict[Group, list[Estimate]]:
        """Estimates by group, in GROUPS order; empty groups left out."""
        out: dict[Group, list[Estimate]] = {}
        for group in GROUPS:
            rows = [e for e in self.estimates if e.group == group]
            if rows:
                out[group] = rows
        return out


def _float_or_none(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def estimates_of(results: dict, groups: dict[str, Group]) -> tuple[Estimate, ...]:
    try:
        items = results["estimates"].items()
        return tuple(
            Estimate(
                name=name,
                group=groups.get(name, "other"),
                value=_float_or_none(row.get("value")),
                **{f: _float_or_none(row.get(f)) for f in SE_FIELDS},
            )
            for name, row in items
        )
    except (KeyError, AttributeError, TypeError):
        raise RunError(f"{RESULTS}: no estimates table in it; is this an ICLV run (made by `gradfit fit`)?") from None


def read_history(path: Path) -> pd.DataFrame:
    """history.csv, or an empty frame when it is missing or unreadable (the report then says so)."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError):
        return pd.DataFrame(columns=["iteration", "loglikelihood", "gradient_norm"])
    return frame


def choice_shares(probabilities: pd.DataFrame) -> pd.DataFrame:
    """Observed share of each alternative among the chosen, and its mean predicted probability."""
    alts = [c[2:] for c in probabilities.columns if c.startswith("P_")]
    observed = probabilities["chosen"].astype(str).value_counts(normalize=True)
    return pd.DataFrame(
        {
            "observed": [float(observed.get(a, 0.0)) for a in alts],
            "predicted": [float(probabilities[f"P_{a}"].mean()) for a in alts],
        },
        index=pd.Index(alts, name="alternative"),
    )


def top_correlations(cov: pd.DataFrame, k: int = TOP_CORRELATIONS) -> tuple[tuple[str, str, float], ...]:
    """The k largest |correlations| between two estimates (a sign of weak identification when near ±1)."""
    values = cov.to_numpy(dtype=float)
    sd = np.sqrt(np.diag(values))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = values / np.outer(sd, sd)
    names = list(cov.index)
    i, j = np.triu_indices(len(names), k=1)
    r = corr[i, j]
    keep = np.isfinite(r)
    order = np.argsort(-np.abs(r[keep]), kind="stable")[:k]
    ii, jj, rr = i[keep][order], j[keep][order], r[keep][order]
    return tuple((names[a], names[b], float(c)) for a, b, c in zip(ii, jj, rr, strict=True))


# -- sweeps ---------------------------------------------------------------------------------------------------------


def _same_run(recorded, run: Path) -> bool:
    # sweep.json records the path as the sweep saw it (maybe relative to another working directory or another
    # machine's disk); a sweep's run folders are <sweep>/<model>/<run>, so the last two parts identify one
    if not recorded:
        return False
    p = Path(str(recorded))
    return (p.name, p.parent.name) == (run.name, run.parent.name)


def _plot_file(folder: Path, axis: str) -> Path:
    # the name `gradfit.sweep.summary.write_summaries` gives the plot of this axis
    return folder / ("draws_" + re.sub(r"[^A-Za-z0-9._-]", "_", axis) + ".png")


def _draw_axes(axes: dict, rows: list[dict]) -> list[str]:
    """The sweep's axes that make a draw study: key ending in `.n`, at least two numeric values among the runs."""
    out = []
    for axis in axes:
        values = [(r.get("axes") or {}).get(axis) for r in rows]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if axis.endswith(".n") and values and numeric and len(set(values)) >= 2:
            out.append(axis)
    return out


def draw_study_of(folder: Path, rows: list[dict], axis: str, run: Path) -> DrawStudy | None:
    try:
        frame = draw_study(rows, axis)
    except GradfitError:
        return None
    others = [c for c in frame.columns if c != axis and not c.startswith(("est:", "se:"))]
    others = [c for c in others if c not in ("trial", "start", "run", "loglikelihood", "converged")]
    table = frame[[axis, *others, "trial", "loglikelihood", "converged"]].copy()
    table["this_run"] = [_same_run(r, run) for r in frame["run"]]
    path = _plot_file(folder, axis)
    if path.is_file():
        return DrawStudy(axis, table, path.read_bytes(), f"{path.name} in the sweep folder")
    with tempfile.TemporaryDirectory() as tmp:  # the sweep wrote no plot (yet): draw it from sweep.json
        png = draw_study_plot(frame, axis, Path(tmp) / "draws.png").read_bytes()
    return DrawStudy(axis, table, png, "drawn from sweep.json")


def sweep_context(run: Path) -> SweepContext | None:
    """The sweep this run belongs to (its folder is <sweep>/<model>/<run> next to sweep.json), or None."""
    folder = run.parent.parent
    path = folder / "sweep.json"
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict):
        return None
    sweep = summary.get("sweep") or {}
    rows = [r for r in summary.get("rows") or [] if isinstance(r, dict)]
    mine = next((r for r in rows if _same_run(r.get("run"), run)), None)
    studies = [draw_study_of(folder, rows, axis, run) for axis in _draw_axes(sweep.get("axes") or {}, rows)]
    return SweepContext(
        name=str(sweep.get("name") or folder.name),
        folder=folder,
        runs=int(summary.get("runs") or len(rows)),
        finished=int(summary.get("finished") or len(rows)),
        axes=dict((mine or {}).get("axes") or {}),
        listed=mine is not None,
        draw_studies=tuple(s for s in studies if s is not None),
    )


# -- everything -----------------------------------------------------------------------------------------------------


def collect(run: str | Path, log: Callable[[str], None] = _quiet) -> ReportData:
    """Read the run, rebuild its model and compute the model-based parts; `log` gets a line per slow step.

    Raises RunError (one line) for a folder that is not a complete ICLV run, and GradfitError when the run's
    data no longer fit its spec (moved, changed) or its robust covariance is not finite (`load_fitted` needs it).
    """
    # imports JAX: only when a report is actually made
    from gradfit.predict import derived_quantities, load_fitted, quantity_expressions

    folder = resolve_run(run)
    if not folder.complete:  # checked here too, so that a user error is the only line printed
        raise RunError(f"{folder.path}: the run is not complete (no {RESULTS}); finish or resume the fit first")
    log(f"building the model of {folder.path} on its data...")
    fitted = load_fitted(folder.path)
    spec: ModelSpec = fitted.spec
    results = dict(fitted.results)
    path = Path(fitted.run.path)
    model = fitted.model
    notes: dict[str, str] = {}

    indicators = None
    discrete = [n for n, ind in spec.indicators.items() if ind.type != "normal"]
    continuous = tuple(n for n, ind in spec.indicators.items() if ind.type == "normal")
    if discrete:
        log("simulating the indicators' predicted distributions...")
        indicators = model.indicator_distribution(fitted.params)
    else:
        notes["indicators"] = "The model has no discrete indicators."

    shares = None
    if spec.choice is not None:
        log("computing the choice probabilities...")
        probabilities = model.choice_probabilities(fitted.params)
        shares = choice_shares(probabilities)
    else:
        notes["choice"] = "The model has no choice part."

    posterior = None
    if spec.latent_variables:
        log("computing the posterior latent variables...")
        posterior = model.posterior_latent(fitted.params)
    else:
        notes["posterior"] = "The model has no latent variables."

    quantities = None
    if spec.quantities and not np.isfinite(fitted.cov.to_numpy()).all():
        notes["quantities"] = "Not computed: the robust covariance of the estimates is not available."
    elif spec.quantities:
        log("evaluating the spec's derived quantities...")
        quantities = derived_quantities(fitted, quantity_expressions(spec, []))

    sweep = sweep_context(path)
    results_file = path / RESULTS
    history = read_history(path / HISTORY)
    if history.empty:
        notes["convergence"] = f"No iterations recorded ({HISTORY} is missing or empty)."
    return ReportData(
        run=path,
        results=results,
        spec=spec,
        finished=datetime.fromtimestamp(results_file.stat().st_mtime) if results_file.exists() else None,
        estimates=estimates_of(results, parameter_groups(spec)),
        fixed={str(k): float(v) for k, v in (results.get("fixed") or {}).items()},
        history=history,
        indicators=indicators,
        continuous_indicators=continuous,
        choice_shares=shares,
        posterior=posterior,
        correlations=top_correlations(fitted.cov) if len(fitted.cov) > 1 else (),
        sweep=sweep,
        quantities=quantities,
        notes=notes,
        warnings=tuple(fitted.warnings),
    )
