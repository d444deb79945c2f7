"""Choice model: multinomial logit over the available alternatives, panel product over a person's rows.

Every row of a person uses the same draws of the latent variables, so the person's choice probability is
the product over rows inside the integral (a sum of logs here), not outside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import pandas as pd

from gradfit.core.logprob import log_softmax_chosen
from gradfit.errors import DataError
from gradfit.expr import Expr
from gradfit.iclv.data import Panel, numeric
from gradfit.iclv.formulas import bind
from gradfit.iclv.spec import ModelSpec


@dataclass(frozen=True)
class Choice:
    alternatives: tuple[str, ...]
    utilities: tuple[Expr, ...]  # data slots are (N, 1, T) arrays; latent variables enter as (N, R, 1)
    latent: tuple[str, ...]

    def utility_matrix(self, p: dict, eta: jnp.ndarray, arrays: dict) -> jnp.ndarray:
        """(N, R, T, J) utilities."""
        env = {**p, **arrays["slots"]}
        env.update({name: eta[..., l][:, :, None] for l, name in enumerate(self.latent)})
        n, t = arrays["chosen"].shape
        shape = (n, eta.shape[1], t)
        return jnp.stack([jnp.broadcast_to(u.evaluate(env, jnp), shape) for u in self.utilities], axis=-1)

    def loglik(self, p: dict, eta: jnp.ndarray, arrays: dict) -> jnp.ndarray:
        """(N, R): sum over the person's rows of log P(chosen alternative)."""
        v = self.utility_matrix(p, eta, arrays)
        lp = log_softmax_chosen(v, arrays["available"][:, None], arrays["chosen"][:, None])
        return jnp.where(arrays["mask"][:, None], lp, 0.0).sum(axis=-1)

    @staticmethod
    def null_loglikelihood(arrays: dict) -> float:
        """LL of equal probabilities over the available alternatives (the choice part's null model)."""
        n_avail = np.asarray(arrays["available"]).sum(axis=-1)
        return float(-np.log(n_avail[np.asarray(arrays["mask"])]).sum())


def build_choice(spec: ModelSpec, df: pd.DataFrame, panel: Panel, source: str) -> tuple[Choice, dict]:
    cs = spec.choice
    assert cs is not None
    symbols = [*spec.parameters, *spec.latent_variables]
    label = panel.label
    slots: dict[str, np.ndarray] = {}

    def row_column(col: str) -> np.ndarray:
        raw = df[col].to_numpy()
        if raw.dtype == object and any(isinstance(v, str) for v in raw[:1000]):
            return panel.pad(raw.astype(object), "")[:, None, :]  # text: only for comparisons with strings
        return panel.pad(numeric(df, col, label, "a utility or availability formula"), 0.0)[:, None, :]

    utilities = tuple(
        bind(a.utility, f"{source}: choice.alternatives.{name}.utility", symbols, df.columns, row_column,
             "u", slots, heavy=spec.latent_variables)
        for name, a in cs.alternatives.items()
    )
    avail = []
    n, t = panel.mask.shape
    for name, a in cs.alternatives.items():
        where = f"{source}: choice.alternatives.{name}.available"
        folded: dict[str, np.ndarray] = {}
        expr = bind(a.available, where, list(spec.parameters), df.columns, row_column, "a", folded)
        if expr.names - set(folded):
            raise DataError(f"{where}: availability may use data columns only, not parameters or latent variables")
        value = np.asarray(expr.evaluate(folded, np), dtype=float)
        avail.append(np.broadcast_to(value, (n, 1, t))[:, 0] != 0)
    available = np.stack(avail, axis=-1)  # (N, T, J)
    codes = numeric(df, cs.column, label, "choice.column")
    alt_codes = np.array([a.code for a in cs.alternatives.values()])
    index = np.searchsorted(np.sort(alt_codes), codes)
    order = np.argsort(alt_codes)
    known = np.isin(codes, alt_codes)
    if not known.all():
        i = np.flatnonzero(~known)[0]
        raise DataError(
            f"{label}: choice column {cs.column!r} has value {codes[i]:g} at row {panel.file_rows[i]}, which is no "
            f"alternative's code {sorted(alt_codes.tolist())}; add the alternative or filter the row out"
        )
    chosen_rows = order[np.minimum(index, len(alt_codes) - 1)]
    chosen = panel.pad(chosen_rows.astype(np.int32), 0)
    available[~panel.mask] = True  # padding rows: anything finite, they are masked out
    rows_avail = available[panel.person, panel.slot]
    none = ~rows_avail.any(axis=-1)
    if none.any():
        raise DataError(f"{label}: no alternative is available at row {panel.file_rows[np.flatnonzero(none)[0]]}; "
                        "check the availability formulas or filter the row out")
    unavailable_choice = ~rows_avail[np.arange(len(chosen_rows)), chosen_rows]
    if unavailable_choice.any():
        i = np.flatnonzero(unavailable_choice)[0]
        raise DataError(
            f"{label}: at row {panel.file_rows[i]} the chosen alternative "
            f"{list(cs.alternatives)[chosen_rows[i]]!r} is not available; check its availability formula"
        )
    arrays = {"slots": slots, "available": available, "chosen": chosen, "mask": panel.mask.copy()}
    return Choice(tuple(cs.alternatives), utilities, tuple(spec.latent_variables)), arrays
