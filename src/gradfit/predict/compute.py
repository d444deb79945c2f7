"""Predictions from a fitted run: choice probabilities per row, shares, derived quantities and elasticities,
each with delta-method and Krinsky-Robb intervals. Compute only: the CLI prints and writes files.

Every quantity is a JAX function of the free-parameter vector theta (`Model.row_probabilities` and the
quantity formulas), so one exact Jacobian gives its delta-method standard error and the same function,
evaluated at parameter draws, gives its Krinsky-Robb interval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from gradfit.errors import FormulaError, GradfitError
from gradfit.expr import Expr, parse
from gradfit.io import load_data
from gradfit.io.data import read_table
from gradfit.predict.fitted import FittedRun
from gradfit.predict.inference import delta_method, normal_interval, parameter_draws, percentile_interval
from gradfit.predict.scenario import Scenario

# Per-row Krinsky-Robb intervals keep every draw's probabilities: above this many numbers they are left out.
ROW_DRAWS_LIMIT = 50_000_000
# Krinsky-Robb draws evaluated in one vectorised call: about this many rows x alternatives x integration draws
# of probabilities at once (memory: a few arrays of that many numbers).
KR_BATCH_ELEMENTS = 20_000_000


@dataclass(frozen=True)
class Settings:
    draws: int = 1000  # Krinsky-Robb parameter draws (0: delta method only)
    level: float = 0.95
    seed: int = 0
    batch: int | None = None  # Krinsky-Robb draws per vectorised call (None: 1 on a CPU, by size on a GPU)


@dataclass(frozen=True)
class Prediction:
    rows: pd.DataFrame  # one row per data row: probabilities (and intervals), per-row quantities
    shares: pd.DataFrame  # per alternative: observed and predicted shares with intervals
    quantities: pd.DataFrame  # derived quantities and elasticities with intervals
    notes: tuple[str, ...]


def quantity_expressions(spec, extra: list[str]) -> dict[str, Expr]:
    """The spec's `quantities` and those given as NAME=FORMULA (command line), parsed."""
    out = {name: parse(text, f"{spec.name}: quantities.{name}") for name, text in spec.quantities.items()}
    for item in extra:
        name, sep, text = item.partition("=")
        if not sep or not name.strip() or not text.strip():
            raise FormulaError(f"--quantity {item!r}: expected NAME=FORMULA, e.g. --quantity 'VOT=B_TIME/B_COST*60'")
        out[name.strip()] = parse(text.strip(), f"--quantity {item!r}")
    return out


def predict(
    fitted: FittedRun,
    scenario: Scenario,
    quantities: dict[str, Expr] | None = None,
    elasticities: tuple[str, ...] = (),
    settings: Settings = Settings(),
    progress: Callable[[int, int], None] | None = None,
) -> Prediction:
    model, spec = fitted.model, fitted.spec
    if spec.choice is None and elasticities:
        raise GradfitError(f"{spec.name}: elasticities need a choice model")
    theta, cov = fitted.theta, _covariance(fitted)
    alts = list(spec.choice.alternatives) if spec.choice is not None else []
    notes = list(fitted.warnings)
    level = settings.level

    frame = load_data(spec.data, scenario.frame, source=spec.name)  # the model's rows, in its order
    q_labels, q_parts, q_rows = _quantity_summaries(_quantity_functions(fitted, frame, quantities or {}))
    if elasticities:  # the data file as read (before derived columns), read once for every scaled copy
        base = (
            scenario.frame
            if scenario.frame is not None
            else read_table(spec.data.path, spec.data.format, spec.data.separator)
        )
    e_fns = {c: _elasticity_function(fitted, base, c) for c in elasticities}

    # Every summary (shares, scalar quantities, elasticities) is one entry of one flat vector function of
    # theta: one reverse-mode Jacobian gives all their delta-method errors, one compiled call per
    # Krinsky-Robb draw gives all their draws (with the rows' probabilities).
    labels: list[tuple[str, str]] = [("share", a) for a in alts]
    parts: list[Callable] = [lambda t: model.row_probabilities(t).mean(axis=0)] if alts else []
    rows = model.choice_probabilities(fitted.params) if alts else pd.DataFrame({"row": frame["__row__"]})
    if not scenario.choices_observed and "chosen" in rows:
        rows = rows.drop(columns="chosen")
    labels, parts = labels + q_labels, parts + q_parts
    for name, fn in q_rows.items():
        value, se = delta_method(fn, theta, cov)  # per row (data fixed), no model evaluation: forward mode
        rows[name], rows[f"{name}_se"] = value, se
    for column, (fn, per_row, roles) in e_fns.items():
        labels += [(f"elasticity {alt} / {column}", roles[j]) for j, alt in enumerate(alts)]
        parts.append(fn)
        own = np.asarray(per_row(jnp.asarray(theta)))
        for j, alt in enumerate(alts):
            rows[f"E_{alt}_{column}"] = own[:, j]

    def summaries(t):
        return jnp.concatenate([jnp.atleast_1d(jnp.asarray(f(t), dtype=jnp.float64)) for f in parts])

    value, se = delta_method(summaries, theta, cov) if parts else (np.zeros(0), np.zeros(0))

    n_draws = settings.draws
    keep_rows = bool(alts) and n_draws * len(rows) * len(alts) <= ROW_DRAWS_LIMIT
    if n_draws and alts and not keep_rows:
        notes.append(f"per-row Krinsky-Robb intervals left out ({len(rows)} rows x {n_draws} draws is too many)")
    # Draws in batches of one vectorised call: on a GPU one model evaluation is far too small to fill it. On a
    # CPU one draw at a time is faster (Optima classic, 2 cores: 44 s per 1,000 draws against 64 s in batches
    # of 34: the batch's wider arrays only add memory traffic).
    batch = int(np.clip(KR_BATCH_ELEMENTS // max(len(rows) * max(len(alts), 1) * model.log_weights.size, 1), 1, 256))
    batch = 1 if model.device.platform == "cpu" else min(batch, max(n_draws, 1))
    batch = settings.batch or batch

    def one_draw(t):
        return summaries(t), (model.row_probabilities(t) if keep_rows else jnp.zeros(()))

    draws_fn = jax.jit(jax.vmap(one_draw))
    kr, kr_rows = [], []
    draws = parameter_draws(theta, cov, n_draws, settings.seed) if n_draws else np.zeros((0, len(theta)))
    for start in range(0, n_draws, batch):
        chunk = draws[start : start + batch]
        padded = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), axis=0)])  # one compiled shape
        summary, p = draws_fn(jnp.asarray(padded))
        kr.append(np.asarray(summary)[: len(chunk)])
        if keep_rows:
            kr_rows.append(np.asarray(p)[: len(chunk)])
        if progress is not None:
            progress(start + len(chunk), n_draws)
    kr = np.concatenate(kr) if kr else np.zeros((0, len(labels)))
    kr_rows = np.concatenate(kr_rows) if kr_rows else None
    kr_lo, kr_hi = percentile_interval(kr, level) if n_draws and parts else (None, None)

    n_alt = len(alts)
    shares = pd.DataFrame({"alternative": alts})
    if alts:
        chosen = np.asarray(rows["chosen"]) if "chosen" in rows else None
        shares["observed"] = [np.mean(chosen == a) for a in alts] if chosen is not None else np.nan
        shares["predicted"], shares["se"] = value[:n_alt], se[:n_alt]
        shares["delta_lo"], shares["delta_hi"] = normal_interval(value[:n_alt], se[:n_alt], level)
        if kr_lo is not None:
            shares["kr_lo"], shares["kr_hi"] = kr_lo[:n_alt], kr_hi[:n_alt]
    if keep_rows and n_draws:
        lo, hi = percentile_interval(kr_rows, level)
        for j, a in enumerate(alts):
            rows[f"P_{a}_lo"], rows[f"P_{a}_hi"] = lo[:, j], hi[:, j]
    table = pd.DataFrame(labels[n_alt:], columns=["quantity", "kind"])
    table["estimate"], table["se"] = value[n_alt:], se[n_alt:]
    table["delta_lo"], table["delta_hi"] = normal_interval(table["estimate"], table["se"], level)
    if kr_lo is not None:
        table["kr_lo"], table["kr_hi"] = kr_lo[n_alt:], kr_hi[n_alt:]
    return Prediction(rows=rows, shares=shares, quantities=table, notes=tuple(notes))


def derived_quantities(fitted: FittedRun, exprs: dict[str, Expr], level: float = 0.95) -> pd.DataFrame:
    """The quantities alone on the run's data, by the delta method (no model evaluation): columns quantity,
    kind, estimate, se, delta_lo, delta_hi, as in `predict`'s table."""
    frame = load_data(fitted.spec.data, source=fitted.spec.name)
    labels, parts, _ = _quantity_summaries(_quantity_functions(fitted, frame, exprs))
    table = pd.DataFrame(labels, columns=["quantity", "kind"])
    if parts:
        value, se = delta_method(lambda t: jnp.concatenate([f(t) for f in parts]), fitted.theta, _covariance(fitted))
    else:
        value, se = np.zeros(0), np.zeros(0)
    table["estimate"], table["se"] = value, se
    table["delta_lo"], table["delta_hi"] = normal_interval(value, se, level)
    return table


def _covariance(fitted: FittedRun) -> np.ndarray:
    cov = fitted.cov.to_numpy()
    if not np.isfinite(cov).all():
        raise GradfitError(
            f"{fitted.run.path}: the robust covariance of the estimates is not available (singular Hessian or "
            "scores); intervals need it: check identification with `gradfit diagnose`"
        )
    return cov


def _quantity_summaries(q_fns: dict) -> tuple[list[tuple[str, str]], list[Callable], dict[str, Callable]]:
    """Labels (quantity, kind) and functions of theta (1-d arrays) of the summaries, and the per-row functions
    of the quantities that use data (which give a mean over the rows and a value at the rows' means)."""
    labels, parts, per_row = [], [], {}
    for name, (fn, at_means) in q_fns.items():
        if at_means is None:
            labels.append((name, "value"))
            parts.append(lambda t, fn=fn: fn(t)[None])
        else:
            labels += [(name, "mean"), (name, "at_means")]
            parts.append(lambda t, fn=fn, at_means=at_means: jnp.stack([fn(t).mean(), at_means(t)]))
            per_row[name] = fn
    return labels, parts, per_row


def _environment(fitted: FittedRun, theta) -> dict:
    """Every parameter by name: free ones from theta (traced), fixed ones at their values."""
    env = {n: float(v) for n, v in fitted.results.get("fixed", {}).items()}
    env.update({n: theta[i] for i, n in enumerate(fitted.model.parameter_names)})
    return env


def _quantity_functions(fitted: FittedRun, frame: pd.DataFrame, exprs: dict[str, Expr]) -> dict:
    """name -> (fn(theta), fn at the data's means or None): fn gives one value per data row when the formula
    uses data (then also the second function), else a scalar."""
    params = set(fitted.spec.parameters)
    out = {}
    for name, expr in exprs.items():
        if name in frame.columns or name in params:
            raise FormulaError(f"quantity {name!r}: the name is already a data column or a parameter; rename it")
        lvs = sorted(expr.names & set(fitted.spec.latent_variables))
        if lvs:
            raise FormulaError(
                f"quantity {name!r}: {lvs[0]!r} is a latent variable; quantities are formulas of parameters and "
                "data columns (posterior latent values: Model.posterior_latent)"
            )
        expr.check_names([*params, *frame.columns], f"quantity {name!r}")
        used = sorted(expr.names - params)
        columns = {c: _numeric(frame, c, name) for c in used}
        means = {c: v.mean() for c, v in columns.items()}

        def fn(theta, expr=expr, data=columns, per_row=bool(used)):
            value = jnp.asarray(expr.evaluate(_environment(fitted, theta) | data, jnp), dtype=jnp.float64)
            return jnp.broadcast_to(value, (len(frame),)) if per_row else value

        out[name] = (fn, (lambda t, fn=fn, means=means: fn(t, data=means, per_row=False)) if used else None)
    return out


def _numeric(frame: pd.DataFrame, column: str, quantity: str) -> jnp.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    if np.isnan(values).any():
        raise FormulaError(f"quantity {quantity!r}: column {column!r} is not numeric on every row; use a number")
    return jnp.asarray(values)


def _elasticity_function(fitted: FittedRun, base: pd.DataFrame, column: str):
    """fn(theta) -> (J,) aggregate elasticities of the predicted shares with respect to a data column,
    per_row(theta) -> (rows, J) each row's own elasticities d log P_ni / d log x_n, and each alternative's role
    ('direct' if its utility uses the column, else 'cross').

    The aggregate (probability-weighted) elasticity of alternative i, sum_n x_n dP_ni/dx_n / sum_n P_ni, is
    d log S_i / d log s when every row's x is scaled by s. It is taken by a central difference in log s on
    the whole model (the column runs through derived columns and any formula), h = 1e-4: truncation error
    ~h^2 = 1e-8 relative, rounding ~1e-12 in float64; its theta-gradient is exact (autodiff at both points).
    """
    spec, model = fitted.spec, fitted.model
    h = 1e-4 if model.work_dtype == jnp.float64 else 3e-3
    frames = [_scaled(base, column, 1 + h), _scaled(base, column, 1 - h)]
    arrays = [model.data_arrays(f) for f in frames]
    step = np.log1p(h) - np.log1p(-h)

    def fn(theta):
        up = jnp.log(model.row_probabilities(theta, arrays[0]).mean(axis=0))
        down = jnp.log(model.row_probabilities(theta, arrays[1]).mean(axis=0))
        return (up - down) / step

    def per_row(theta):  # each row's own (disaggregate) elasticities, (rows, J)
        return (
            jnp.log(model.row_probabilities(theta, arrays[0])) - jnp.log(model.row_probabilities(theta, arrays[1]))
        ) / step

    return fn, per_row, _roles(spec, column)


def _scaled(frame: pd.DataFrame, column: str, factor: float) -> pd.DataFrame:
    if column not in frame.columns:
        raise GradfitError(f"--elasticity {column}: the data have no column {column!r}")
    out = frame.copy()
    out[column] = pd.to_numeric(out[column], errors="coerce") * factor
    return out


def _roles(spec, column: str) -> list[str]:
    """'direct' for each alternative whose utility uses the column (directly or through derived columns)."""
    derived = {name: parse(text, name).names for name, text in spec.data.derived.items()}

    def uses(names: frozenset[str] | set[str], seen=frozenset()) -> bool:
        return column in names or any(uses(derived[n], seen | {n}) for n in names if n in derived and n not in seen)

    return ["direct" if uses(parse(a.utility, name).names) else "cross" for name, a in spec.choice.alternatives.items()]
