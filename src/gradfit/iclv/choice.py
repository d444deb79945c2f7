"""Choice model: multinomial logit over the available alternatives, panel product over a person's rows.

Every row of a person uses the same draws of the latent variables, so the person's choice probability is
the product over rows inside the integral (a sum of logs here), not outside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from gradfit.core.logprob import log_softmax_chosen
from gradfit.errors import DataError
from gradfit.expr import Expr
from gradfit.iclv.data import Panel, numeric
from gradfit.iclv.formulas import bind
from gradfit.iclv.linear import decompose
from gradfit.iclv.params import CoefTable, Values
from gradfit.iclv.spec import ModelSpec
from gradfit.kernels import log_denominators


@dataclass(frozen=True)
class Choice:
    """Utilities = X @ W (parameter x data terms) + eta @ C (parameter x LV terms) + rest (anything else)."""

    alternatives: tuple[str, ...]
    latent: tuple[str, ...]
    x_coef: np.ndarray  # (K, 2) ext indices of each data term's (up to two) parameters; a constant 1 pads
    x_factor: np.ndarray  # (K,)
    x_target: np.ndarray  # (K, J) one-hot: the term's alternative
    c_coef: np.ndarray  # (M, 2) latent-variable terms
    c_factor: np.ndarray
    c_target: np.ndarray  # (M, L, J) one-hot
    rest: tuple[Expr | None, ...]  # per alternative; data slots are (N, 1, T), LVs enter as (N, R, 1)
    # The denominators as a sum of broadcast products instead of a matrix product (Likelihood.for_device).
    fused: bool = False
    # The denominators' logs through the Pallas kernels of gradfit.kernels.logit (Likelihood.with_kernels):
    # None (XLA), "gpu", or "interpret" (tests).
    kernel: str | None = None

    def _data_and_latent(self, v: Values, eta: jnp.ndarray, arrays: dict) -> tuple[jnp.ndarray, jnp.ndarray]:
        """The two linear parts: data terms (N, T, J) and latent-variable terms (N, R, J).

        A part without terms is zeros rather than computed from empty arrays of parameters: under shard_map
        on several CPU devices, JAX 0.11.2 crashes (segmentation fault) on those of a logit without latent
        variables in its utilities (tests/test_placement.py).
        """
        dt = v.ext.dtype
        n_alt = len(self.alternatives)
        if len(self.x_coef):
            w = v.ext[self.x_coef].prod(axis=-1) * jnp.asarray(self.x_factor, dt)
            v_data = arrays["X"] @ (w[:, None] * jnp.asarray(self.x_target, dt))
        else:
            v_data = jnp.zeros((*arrays["mask"].shape, n_alt), dt)
        if len(self.c_coef):
            g = v.ext[self.c_coef].prod(axis=-1) * jnp.asarray(self.c_factor, dt)
            c = (g[:, None, None] * jnp.asarray(self.c_target, dt)).sum(axis=0)  # (L, J)
        else:
            c = jnp.zeros((eta.shape[-1], n_alt), dt)
        return v_data, eta @ c

    def utility_matrix(self, v: Values, eta: jnp.ndarray, arrays: dict) -> jnp.ndarray:
        """(N, R, T, J) utilities."""
        n, t = arrays["mask"].shape
        v_data, v_latent = self._data_and_latent(v, eta, arrays)
        util = v_data[:, None] + v_latent[:, :, None, :]
        if any(r is not None for r in self.rest):
            env = {**v.scalars, **arrays["slots"]}
            env.update({name: eta[..., l][:, :, None] for l, name in enumerate(self.latent)})
            shape = (n, eta.shape[1], t)
            zero = jnp.zeros((), v.ext.dtype)
            parts = [jnp.broadcast_to(zero if r is None else r.evaluate(env, jnp), shape) for r in self.rest]
            util = util + jnp.stack(parts, axis=-1)
        return jnp.broadcast_to(util, (n, eta.shape[1], t, len(self.alternatives)))

    def loglik(self, v: Values, eta: jnp.ndarray, arrays: dict) -> jnp.ndarray:
        """(N, R): sum over the person's rows of log P(chosen alternative)."""
        if all(r is None for r in self.rest):
            return _factored_loglik(*self._data_and_latent(v, eta, arrays), arrays, self.fused, self.kernel)
        return self._direct(v, eta, arrays)

    def probabilities(self, v: Values, eta: jnp.ndarray, arrays: dict) -> jnp.ndarray:
        """(N, R, T, J) logit probabilities of every alternative at every draw; 0 where unavailable."""
        u = self.utility_matrix(v, eta, arrays)
        avail = arrays["available"][:, None]
        # Unavailable alternatives get the row's lowest available utility less 1e4 (exp(-1e4) = 0 in float64)
        # instead of -inf: a finite input keeps every derivative finite, and where() zeroes them afterwards.
        low = jnp.min(jnp.where(avail, u, jnp.inf), axis=-1, keepdims=True) - 1e4
        p = jax.nn.softmax(jnp.where(avail, u, jax.lax.stop_gradient(low)), axis=-1)
        return jnp.where(avail, p, 0.0)

    def _direct(self, v: Values, eta: jnp.ndarray, arrays: dict) -> jnp.ndarray:
        u = self.utility_matrix(v, eta, arrays)
        lp = log_softmax_chosen(u, arrays["available"][:, None], arrays["chosen"][:, None])
        return jnp.where(arrays["mask"][:, None], lp, 0.0).sum(axis=-1)

    @staticmethod
    def null_loglikelihood(arrays: dict) -> float:
        """LL of equal probabilities over the available alternatives (the choice part's null model)."""
        n_avail = np.asarray(arrays["available"]).sum(axis=-1)
        return float(-np.log(n_avail[np.asarray(arrays["mask"])]).sum())


def _factored_loglik(
    v_data: jnp.ndarray, v_latent: jnp.ndarray, arrays: dict, fused: bool = False, kernel: str | None = None
) -> jnp.ndarray:
    """Panel logit log-likelihood (N, R) when utility = data part (N, T, J) + latent part (N, R, J).

    exp(V) = exp(V_data) exp(V_latent), so each denominator sum_j exp(V_ntj + V_nrj) is a small matrix product
    of two exponentiated factors, each shifted by its own maximum: the people x draws x rows x alternatives
    array of the direct form is never built, and one log per person, draw and row remains. `fused` writes that
    product as J broadcast products, which XLA's GPU backend fuses with the log and the sum over rows (H100,
    10,000 people x 1,000 draws: 29.7 -> 28.6 ms float64); on the CPU it is slower.

    Each shifted exponent is floored at FLOOR = 0.3 log(tiny) (-212 in float64), so a denominator can never
    underflow to 0 (log 0 would poison the gradient). The floor changes a denominator by less than its rounding
    error unless the denominator itself is below exp(FLOOR + 37), i.e. unless, for that row and draw, every
    alternative's utility lies some 175 or more below max(data part) + max(latent part) — far outside any
    fitted model, and even then the result stays finite.
    """
    avail, chosen, mask = arrays["available"], arrays["chosen"], arrays["mask"]
    floor = 0.3 * float(np.log(np.finfo(v_data.dtype).tiny))
    top_data = jax.lax.stop_gradient(jnp.max(jnp.where(avail, v_data, -jnp.inf), axis=-1, keepdims=True))
    top_latent = jax.lax.stop_gradient(jnp.max(v_latent, axis=-1, keepdims=True))
    a = jnp.where(avail, jnp.exp(jnp.maximum(v_data - top_data, floor)), 0.0)  # (N, T, J)
    b = jnp.exp(jnp.maximum(v_latent - top_latent, floor))  # (N, R, J)
    weight = mask.astype(v_data.dtype)
    if kernel is not None:  # the (N, R, T) denominators never leave the kernel
        log_s = log_denominators(b, a, mask, kernel == "interpret")
    else:
        if fused:  # a sum of J broadcast products: elementwise, fuses with the log and the sum over t
            s = b[:, :, None, 0] * a[:, None, :, 0]
            for j in range(1, b.shape[-1]):
                s = s + b[:, :, None, j] * a[:, None, :, j]
        else:
            s = jnp.einsum("nrj,ntj->nrt", b, a)
        log_s = (jnp.log(jnp.where(mask[:, None], s, 1.0))).sum(-1)
    picked_data = (jnp.where(chosen, v_data, 0.0).sum(-1) * weight).sum(-1)  # (N,)
    counts = (chosen.astype(v_data.dtype) * weight[..., None]).sum(axis=1)  # (N, J): choices of each alternative
    picked_latent = (v_latent * counts[:, None, :]).sum(-1)  # (N, R)
    log_den = log_s + (top_data[..., 0] * weight).sum(-1)[:, None]
    log_den = log_den + top_latent[..., 0] * weight.sum(-1)[:, None]
    return picked_data[:, None] + picked_latent - log_den


def build_choice(spec: ModelSpec, df: pd.DataFrame, panel: Panel, coefs: CoefTable, source: str) -> tuple[Choice, dict]:
    cs = spec.choice
    assert cs is not None
    symbols = [*spec.parameters, *spec.latent_variables]
    label = panel.label
    slots: dict[str, np.ndarray] = {}

    def row_column(col: str) -> np.ndarray:
        raw = df[col].to_numpy()
        if raw.dtype == object and _is_text(raw):
            return panel.pad(raw.astype(object), "")[:, None, :]  # text: only for comparisons with strings
        return panel.pad(numeric(df, col, label, "a utility or availability formula"), 0.0)[:, None, :]

    utilities = tuple(
        bind(
            a.utility,
            f"{source}: choice.alternatives.{name}.utility",
            symbols,
            df.columns,
            row_column,
            "u",
            slots,
            heavy=spec.latent_variables,
        )
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
    chosen = np.eye(len(alt_codes), dtype=bool)[panel.pad(chosen_rows.astype(np.int32), 0)]  # (N, T, J) one-hot
    available[~panel.mask] = True  # padding rows: anything finite, they are masked out
    rows_avail = available[panel.person, panel.slot]
    none = ~rows_avail.any(axis=-1)
    if none.any():
        raise DataError(
            f"{label}: no alternative is available at row {panel.file_rows[np.flatnonzero(none)[0]]}; "
            "check the availability formulas or filter the row out"
        )
    unavailable_choice = ~rows_avail[np.arange(len(chosen_rows)), chosen_rows]
    if unavailable_choice.any():
        i = np.flatnonzero(unavailable_choice)[0]
        raise DataError(
            f"{label}: at row {panel.file_rows[i]} the chosen alternative "
            f"{list(cs.alternatives)[chosen_rows[i]]!r} is not available; check its availability formula"
        )
    choice, x = _linearise(spec, utilities, slots, panel, coefs)
    used = set().union(*(r.names for r in choice.rest if r is not None))
    arrays = {
        "X": x,
        "slots": {k: v for k, v in slots.items() if k in used},
        "available": available,
        "chosen": chosen,
        "mask": panel.mask.copy(),
    }
    return choice, arrays


def _is_text(values: np.ndarray) -> bool:
    """A text column holds no numbers at all; a numeric column with a stray word is bad data, not text."""
    present = pd.Series(values).dropna()
    return len(present) > 0 and pd.to_numeric(present, errors="coerce").isna().all()


def _linearise(spec: ModelSpec, utilities, slots, panel: Panel, coefs: CoefTable) -> tuple[Choice, np.ndarray]:
    lvs = tuple(spec.latent_variables)
    n_alt = len(utilities)
    cols, x_coef, x_factor, x_target = [], [], [], []
    c_coef, c_factor, c_target, rest = [], [], [], []
    one = coefs.index(1.0)

    def pair(params: tuple[str, ...]) -> list[int]:
        return [coefs.index(p) for p in params] + [one] * (2 - len(params))

    for j, u in enumerate(utilities):
        # Distributed: a scale times a linear utility (scale * (asc + b * x + c * lv)) is linear term by term.
        form = decompose(u, set(spec.parameters), set(lvs), set(slots), max_params=2, expand=True)
        for factor, params, data in form.data_terms:
            col = panel.mask.astype(float)
            for slot in data:
                col = col * slots[slot][:, 0, :]
            cols.append(col)
            x_coef.append(pair(params))
            x_factor.append(factor)
            x_target.append(np.eye(n_alt)[j])
        for factor, params, lv in form.lv_terms:
            c_coef.append(pair(params))
            c_factor.append(factor)
            t = np.zeros((len(lvs), n_alt))
            t[lvs.index(lv), j] = 1.0
            c_target.append(t)
        rest.append(form.rest)
    x = np.stack(cols, axis=-1) if cols else np.zeros((*panel.mask.shape, 0))
    choice = Choice(
        alternatives=tuple(spec.choice.alternatives),
        latent=lvs,
        x_coef=np.asarray(x_coef, dtype=np.int32).reshape(-1, 2),
        x_factor=np.asarray(x_factor, dtype=float),
        x_target=np.asarray(x_target, dtype=float).reshape(len(x_target), n_alt),
        c_coef=np.asarray(c_coef, dtype=np.int32).reshape(-1, 2),
        c_factor=np.asarray(c_factor, dtype=float),
        c_target=np.asarray(c_target, dtype=float).reshape(len(c_target), len(lvs), n_alt),
        rest=tuple(rest),
    )
    return choice, x
