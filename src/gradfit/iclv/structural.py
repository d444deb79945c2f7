"""Structural equations: LV = mean(person covariates, other LVs, parameters) + L z.

L is lower-triangular: its diagonal holds each error's scale, its off-diagonal entries (declared as
`correlations`) correlate the errors. When every mean is linear (parameter x covariate, parameter x latent
variable), the means are one contraction X @ B for all latent variables, and latent-on-latent effects are added
in topological order. Otherwise each mean formula is evaluated, one latent variable after another.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import pandas as pd

from gradfit.expr import Expr
from gradfit.iclv.data import Panel, numeric
from gradfit.iclv.formulas import bind
from gradfit.iclv.linear import decompose
from gradfit.iclv.params import CoefTable, Values
from gradfit.iclv.spec import ModelSpec


@dataclass(frozen=True)
class Structural:
    names: tuple[str, ...]  # declared order = position in the draws' last axis
    order: tuple[str, ...]  # evaluation order (generic path)
    chol_index: np.ndarray  # (L, L) positions in ext of the Cholesky factor's entries (a 0 constant elsewhere)
    means: tuple[Expr, ...] | None  # generic path: formulas whose data slots are (N, 1) arrays
    # linear path: mean = X @ (weights scattered to LVs), X holds one column per data term
    x_coef: np.ndarray | None = None  # (K,) ext index of each term's parameter
    x_factor: np.ndarray | None = None  # (K,)
    x_target: np.ndarray | None = None  # (K, L) one-hot: which LV's mean the term belongs to
    effects: tuple[tuple[int, int, int, float], ...] = ()  # (target LV, source LV, ext index, factor)
    # The draws times the Cholesky factor as broadcast products rather than a matrix product (GPUs,
    # Likelihood.for_device): no GEMM before the latent variables exist, and the factor's gradient a reduction
    # beside the others instead of a split-K GEMM at the end of the reverse pass (H100, seed model: 0.97 of
    # the value+gradient's time; benchmarks/RESULTS.md).
    fused: bool = False

    def __call__(self, v: Values, z: jnp.ndarray, arrays: dict) -> jnp.ndarray:
        """z: (N or 1, R, L) standard normal draws -> latent variables (N or 1, R, L)."""
        dt = v.ext.dtype
        chol_t = v.ext[self.chol_index].T
        if self.fused and chol_t.shape[0]:  # L broadcast multiply-adds: elementwise, XLA fuses them into eta
            errors = z[..., 0, None] * chol_t[0]
            for m in range(1, chol_t.shape[0]):
                errors = errors + z[..., m, None] * chol_t[m]
        else:
            errors = z @ chol_t
        if self.means is None:
            w = v.ext[self.x_coef] * jnp.asarray(self.x_factor, dt)
            mean = arrays["X"] @ (w[:, None] * jnp.asarray(self.x_target, dt))  # (N, L)
            level = mean[:, None, :] + errors
            if not self.effects:
                return level
            # Latent-on-latent effects, applied in topological order so every source is final when used.
            cols = [level[..., k] for k in range(len(self.names))]
            for target, source, index, factor in self.effects:
                cols[target] = cols[target] + factor * v.ext[index] * cols[source]
            return jnp.stack(cols, axis=-1)
        n_people = next(iter(arrays.values())).shape[0] if arrays else z.shape[0]
        values: dict[str, jnp.ndarray] = {}
        for name in self.order:  # generic path
            k = self.names.index(name)
            mean = self.means[k].evaluate({**v.scalars, **arrays, **values}, jnp)
            values[name] = jnp.broadcast_to(mean + errors[..., k], (max(n_people, z.shape[0]), z.shape[1]))
        return jnp.stack([values[n] for n in self.names], axis=-1)


def build_structural(
    spec: ModelSpec, df: pd.DataFrame, panel: Panel, coefs: CoefTable, source: str
) -> tuple[Structural, dict[str, np.ndarray]]:
    """The structural component and its data arrays (person-level covariates)."""
    names = tuple(spec.latent_variables)
    n_lv = len(names)
    symbols = [*spec.parameters, *names]
    slots: dict[str, np.ndarray] = {}

    def person_column(col: str) -> np.ndarray:
        values = numeric(df, col, panel.label, "a structural equation")
        fix = "make it constant per person (structural means use person-level columns only)"
        return panel.person_level(values, col, fix=fix)[:, None]

    means = tuple(
        bind(
            lv.mean,
            f"{source}: latent_variables.{name}.mean",
            symbols,
            df.columns,
            person_column,
            "s",
            slots,
            heavy=names,
        )
        for name, lv in spec.latent_variables.items()
    )
    chol = np.full((n_lv, n_lv), coefs.index(0.0), dtype=np.int32)
    for k, lv in enumerate(spec.latent_variables.values()):
        chol[k, k] = coefs.index(lv.scale)
    for c in spec.correlations:
        chol[names.index(c.between[1]), names.index(c.between[0])] = coefs.index(c.parameter)
    order = tuple(spec.latent_order())
    forms = [decompose(m, set(spec.parameters), set(names), set(slots)) for m in means]
    if any(f.rest is not None for f in forms):
        return Structural(names, order, chol, means), slots

    x_cols, x_coef, x_factor, x_target = [], [], [], []
    effects = []
    for k, form in enumerate(forms):
        for factor, (param,), data in form.data_terms:
            x_cols.append(slots[data[0]][:, 0] if data else np.ones(panel.n_people))
            x_coef.append(coefs.index(param))
            x_factor.append(factor)
            x_target.append(np.eye(n_lv)[k])
        for factor, (param,), lv in form.lv_terms:
            effects.append((k, names.index(lv), coefs.index(param), factor))
    rank = {name: i for i, name in enumerate(order)}
    effects.sort(key=lambda e: rank[names[e[0]]])
    x = np.stack(x_cols, axis=1) if x_cols else np.zeros((panel.n_people, 0))
    structural = Structural(
        names,
        order,
        chol,
        None,
        x_coef=np.asarray(x_coef, dtype=np.int32),
        x_factor=np.asarray(x_factor, dtype=float),
        x_target=np.asarray(x_target, dtype=float).reshape(len(x_target), n_lv),
        effects=tuple(effects),
    )
    return structural, {"X": x}
