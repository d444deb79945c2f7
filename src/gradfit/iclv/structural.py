"""Structural equations: LV_k = mean_k(person covariates, earlier LVs, parameters) + (L z)_k.

L is lower-triangular: its diagonal holds each error's scale, its off-diagonal entries (declared as
`correlations`) correlate the errors. Latent variables are computed in topological order, so a mean may use any
latent variable that does not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import pandas as pd

from gradfit.expr import Expr
from gradfit.iclv.data import Panel, numeric
from gradfit.iclv.formulas import bind
from gradfit.iclv.params import coef
from gradfit.iclv.spec import ModelSpec


@dataclass(frozen=True)
class Structural:
    names: tuple[str, ...]  # declared order = position in the draws' last axis
    order: tuple[str, ...]  # evaluation order
    means: tuple[Expr, ...]  # in declared order; data slots are (N, 1) person-level arrays
    scales: tuple[float | str, ...]
    correlations: tuple[tuple[int, int, float | str], ...]  # (row b, column a, L[b, a])

    def __call__(self, p: dict, z: jnp.ndarray, arrays: dict) -> jnp.ndarray:
        """z: (N or 1, R, L) standard normal draws -> latent variables (N, R, L)."""
        n_people = next(iter(arrays.values())).shape[0] if arrays else z.shape[0]
        errors = [coef(p, s) * z[..., k] for k, s in enumerate(self.scales)]
        for b, a, value in self.correlations:
            errors[b] = errors[b] + coef(p, value) * z[..., a]
        values: dict[str, jnp.ndarray] = {}
        for name in self.order:
            k = self.names.index(name)
            mean = self.means[k].evaluate({**p, **arrays, **values}, jnp)
            values[name] = jnp.broadcast_to(mean + errors[k], (n_people, z.shape[1]))
        return jnp.stack([values[n] for n in self.names], axis=-1)


def build_structural(
    spec: ModelSpec, df: pd.DataFrame, panel: Panel, source: str
) -> tuple[Structural, dict[str, np.ndarray]]:
    """The structural component and its data arrays (person-level covariates, (N, 1) each)."""
    names = tuple(spec.latent_variables)
    symbols = [*spec.parameters, *names]
    arrays: dict[str, np.ndarray] = {}

    def person_column(col: str) -> np.ndarray:
        values = numeric(df, col, panel.label, "a structural equation")
        return panel.person_level(values, col)[:, None]

    means = tuple(
        bind(lv.mean, f"{source}: latent_variables.{name}.mean", symbols, df.columns, person_column,
             "s", arrays)
        for name, lv in spec.latent_variables.items()
    )
    scales = tuple(lv.scale for lv in spec.latent_variables.values())
    corr = tuple((names.index(c.between[1]), names.index(c.between[0]), c.parameter) for c in spec.correlations)
    return Structural(names, tuple(spec.latent_order()), means, scales, corr), arrays
