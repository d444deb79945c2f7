"""Estimation runs side by side, with likelihood-ratio tests for every nested pair (`gradfit compare`).

Compute only: the CLI prints. Nesting is decided from what the run folders record, not from the specs'
formulas: a restricted run R is nested in a general run G when R's free parameters are a strict subset of G's
(G's extra parameters fixed in R, or absent from it), every parameter fixed in both is fixed at the same value,
and both were fitted to the same data (same `data_sha256` where both recorded one, same numbers of
observations and individuals). That R's spec is G's with parameters removed or fixed is the user's side of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from scipy.stats import chi2

from gradfit.errors import GradfitError
from gradfit.runs.folder import RESULTS, RunError, resolve_run

# results.json keys an estimation run must have; VAEP and biLM runs are told apart by their `workload` key
_REQUIRED = ("loglikelihood", "n_parameters", "n_observations", "n_individuals", "estimates", "fixed")
_NON_ESTIMATION = ("vaep", "bilm")

FIT_COLUMNS = (
    "model",
    "loglikelihood",
    "null_loglikelihood",
    "rho_squared",
    "n_parameters",
    "aic",
    "bic",
    "n_observations",
    "n_individuals",
    "converged",
    "integration",
    "run",
)
TEST_COLUMNS = ("restricted", "general", "lr", "df", "p_value", "note")


@dataclass(frozen=True)
class RunResults:
    """One complete estimation run: its folder, its label in the tables, and its results.json."""

    label: str
    path: Path
    record: dict
    parameter_order: tuple[str, ...]  # the spec's order of the free and fixed parameters

    @property
    def free(self) -> dict[str, dict]:
        return self.record["estimates"]

    @property
    def fixed(self) -> dict[str, float]:
        return self.record["fixed"] or {}

    @property
    def loglikelihood(self) -> float:
        return float(self.record["loglikelihood"])


@dataclass(frozen=True)
class Comparison:
    """Runs side by side.

    estimates: rows = parameters (union, first-seen order), columns = (run label, value | robust_std_err | fixed);
      a fixed parameter has its fixed value, no standard error and fixed=True; a parameter a run lacks is empty.
    fit: one row per run (index = label), the columns of FIT_COLUMNS.
    tests: one row per nested pair, the columns of TEST_COLUMNS (lr = 2 (LL_general - LL_restricted)).
    notes: what the reader should know that the tables do not say (why there are no tests, data that differ).
    """

    runs: tuple[RunResults, ...]
    estimates: pd.DataFrame
    fit: pd.DataFrame
    tests: pd.DataFrame
    notes: tuple[str, ...]

    def flat_estimates(self) -> pd.DataFrame:
        """The estimates with one header row: '<label> value', '<label> robust_std_err', '<label> fixed'."""
        flat = self.estimates.copy()
        flat.columns = [f"{label} {quantity}" for label, quantity in flat.columns]
        flat.index.name = "parameter"
        return flat


def load_run(run: str | Path) -> tuple[Path, dict, tuple[str, ...]]:
    """A complete estimation run's folder, results.json and parameter order; RunError otherwise."""
    folder = resolve_run(run)
    config = folder.read_config() or {}
    workload = config.get("workload") if isinstance(config, dict) else None
    if workload in _NON_ESTIMATION:
        raise RunError(f"{folder.path}: a {workload} run; compare takes estimation runs from `gradfit fit`")
    if not folder.complete:
        raise RunError(
            f"{folder.path}: incomplete run (no {RESULTS}); finish it with "
            f"`gradfit fit SPEC --resume {folder.path}` or leave it out"
        )
    record = folder.read_json(RESULTS)
    if record.get("workload") in _NON_ESTIMATION:
        raise RunError(f"{folder.path}: a {record['workload']} run; compare takes estimation runs from `gradfit fit`")
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
        raise RunError(
            f"{folder.file(RESULTS)}: no {missing[0]!r}; the run folder is damaged or not from `gradfit fit`"
        )
    params = config.get("parameters") if isinstance(config, dict) else None
    order = tuple(params) if isinstance(params, dict) else ()
    return folder.path, record, order


def _labels(paths: list[Path], models: list[str]) -> list[str]:
    """The shortest names that tell the runs apart: model names, run folder names, both, or the paths."""
    for labels in (models, [p.name for p in paths], [f"{m}/{p.name}" for m, p in zip(models, paths, strict=True)]):
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]  # distinct: the same run twice is refused before


def _integration(spec: object) -> str:
    if not isinstance(spec, dict):
        return ""
    text = f"{spec.get('type')} n={spec.get('n')}"
    return text + (" antithetic" if spec.get("antithetic") else "")


def _param_order(runs: list[RunResults]) -> list[str]:
    """Union of the parameters in first-seen order, each run in its spec's order (free and fixed mixed)."""
    seen: dict[str, None] = {}
    for r in runs:
        known = set(r.free) | set(r.fixed)
        for name in [n for n in r.parameter_order if n in known] + list(r.free) + list(r.fixed):
            seen.setdefault(name, None)
    return list(seen)


def _estimates(runs: list[RunResults]) -> pd.DataFrame:
    names = _param_order(runs)
    columns = {}
    for r in runs:
        value, se, fixed = [], [], []
        for name in names:
            if name in r.free:
                est = r.free[name]
                value.append(_float(est.get("value")))
                se.append(_float(est.get("robust_std_err")))
                fixed.append(False)
            elif name in r.fixed:
                value.append(_float(r.fixed[name]))
                se.append(math.nan)
                fixed.append(True)
            else:
                value.append(math.nan)
                se.append(math.nan)
                fixed.append(pd.NA)
        columns[(r.label, "value")] = pd.Series(value, index=names, dtype="float64")
        columns[(r.label, "robust_std_err")] = pd.Series(se, index=names, dtype="float64")
        columns[(r.label, "fixed")] = pd.Series(fixed, index=names, dtype="boolean")
    frame = pd.DataFrame(columns, index=names)
    frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["run", "quantity"])
    frame.index.name = "parameter"
    return frame


def _float(x) -> float:
    return math.nan if x is None else float(x)  # results.json writes a standard error it could not compute as null


def _fit(runs: list[RunResults]) -> pd.DataFrame:
    rows = []
    for r in runs:
        rec = r.record
        rows.append(
            {
                "model": rec.get("model", ""),
                "loglikelihood": r.loglikelihood,
                "null_loglikelihood": _float(rec.get("null_loglikelihood")),
                "rho_squared": _float(rec.get("rho_squared")),
                "n_parameters": len(r.free),
                "aic": _float(rec.get("aic")),
                "bic": _float(rec.get("bic")),
                "n_observations": int(rec["n_observations"]),
                "n_individuals": int(rec["n_individuals"]),
                "converged": bool(rec.get("converged")),
                "integration": _integration(rec.get("integration")),
                "run": str(r.path),
            }
        )
    return pd.DataFrame(rows, index=pd.Index([r.label for r in runs], name="run_label"), columns=list(FIT_COLUMNS))


def _data_difference(a: RunResults, b: RunResults) -> str | None:
    """Why two runs were not fitted to the same data, or None when nothing recorded says they differ."""
    sa, sb = a.record.get("data_sha256"), b.record.get("data_sha256")
    if sa and sb and sa != sb:
        return "their data files differ (data_sha256)"
    for key, what in (("n_observations", "observations"), ("n_individuals", "individuals")):
        if a.record[key] != b.record[key]:
            return f"their numbers of {what} differ ({a.record[key]} vs {b.record[key]})"
    return None


def _nesting(r: RunResults, g: RunResults) -> tuple[bool, str | None]:
    """(R nested in G by its parameters, why not although its free parameters are a strict subset of G's)."""
    if not set(r.free) < set(g.free):
        return False, None
    for name in set(r.fixed) & set(g.fixed):
        if not math.isclose(_float(r.fixed[name]), _float(g.fixed[name]), rel_tol=1e-12, abs_tol=1e-12):
            return False, f"{name} is fixed at {r.fixed[name]} in {r.label} but at {g.fixed[name]} in {g.label}"
    difference = _data_difference(r, g)
    if difference:
        return False, difference
    return True, None


def _test(r: RunResults, g: RunResults) -> dict:
    lr = 2.0 * (g.loglikelihood - r.loglikelihood)
    df = len(g.free) - len(r.free)
    notes = []
    if lr < 0:
        # chi2.sf of a negative number is 1: the row is kept, but the statistic means nothing until G is refitted
        notes.append(f"LR < 0: {g.label} ended below {r.label}, so it is not at its maximum; refit it")
    if not (r.record.get("converged") and g.record.get("converged")):
        notes.append("a run did not converge")
    if _integration(r.record.get("integration")) != _integration(g.record.get("integration")):
        notes.append("different integration settings: LR includes simulation noise")
    return {
        "restricted": r.label,
        "general": g.label,
        "lr": lr,
        "df": df,
        "p_value": float(chi2.sf(lr, df)),
        "note": "; ".join(notes),
    }


def compare_runs(runs: list[str | Path]) -> Comparison:
    """Load the runs (run folders or `latest` links) and compare them; RunError for a run that cannot be used."""
    if len(runs) < 2:
        raise GradfitError(f"compare needs at least two runs, got {len(runs)}; pass two or more run folders")
    loaded = [load_run(r) for r in runs]
    paths = [p for p, _, _ in loaded]
    for i, p in enumerate(paths):
        if p in paths[:i]:
            raise RunError(f"{runs[i]}: the same run as {runs[paths.index(p)]}; pass each run once")
    labels = _labels(paths, [str(rec.get("model", p.parent.name)) for p, rec, _ in loaded])
    results = [
        RunResults(label=label, path=p, record=rec, parameter_order=order)
        for label, (p, rec, order) in zip(labels, loaded, strict=True)
    ]
    tests, notes = [], []
    for g in results:
        for r in results:
            if r is g:
                continue
            nested, why_not = _nesting(r, g)
            if nested:
                tests.append(_test(r, g))
            elif why_not:
                notes.append(f"no LR test of {r.label} within {g.label}: {why_not}")
    if not tests:
        notes.insert(
            0,
            "no LR tests: no pair of runs is nested (a restricted run's free parameters must be a strict subset "
            "of the general run's, fitted to the same data)",
        )
    # the most general model first, then its restrictions from the least restricted down (testing down)
    k = {x.label: len(x.free) for x in results}
    tests.sort(key=lambda t: (-k[t["general"]], -k[t["restricted"]]))
    return Comparison(
        runs=tuple(results),
        estimates=_estimates(results),
        fit=_fit(results),
        tests=pd.DataFrame(tests, columns=list(TEST_COLUMNS)),
        notes=tuple(notes),
    )
