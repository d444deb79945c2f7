"""Measurement equations: indicators given the latent variables.

Indicators of the same type and level (person / row) are stacked into one group and evaluated together:
mu = intercept + LV @ loadings.T, one array operation for all of them instead of a loop over indicators.
A missing code contributes log 1 = 0 (masked out).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from gradfit.core.logprob import log1mexp, log_binary_logit, ordered_loglik
from gradfit.errors import DataError
from gradfit.iclv.data import Panel, column
from gradfit.iclv.params import CoefTable, Values
from gradfit.iclv.spec import IndicatorSpec, ModelSpec, ThresholdSpec, n_thresholds
from gradfit.kernels import ordered_logit_person


def threshold_matrix(th: ThresholdSpec, n_cuts: int) -> np.ndarray:
    """A with tau = A @ p for a threshold set's parameters p: every form is linear in its parameters."""
    m = len(th.parameters)
    if th.form == "cutpoints":
        return np.eye(n_cuts, m)
    if th.form == "increments":
        return np.tril(np.ones((n_cuts, m)))
    # symmetric: -(p1 + ... + pm), ..., -p1, [0], p1, ..., p1 + ... + pm
    half = np.tril(np.ones((m, m)))
    middle = [np.zeros((1, m))] if n_cuts % 2 else []
    return np.concatenate([-half[::-1], *middle, half])


@dataclass(frozen=True)
class IndicatorGroup:
    """Indicators of one type and level, stacked on the last axis (K). Coefficients are gathered from `ext`."""

    kind: str
    person_level: bool
    names: tuple[str, ...]
    intercept_index: np.ndarray  # (K,)
    scale_index: np.ndarray  # (K,)
    loading_index: np.ndarray  # (K, L), a 0 constant where an indicator does not load
    threshold_index: np.ndarray | None  # (K, M) parameters of each indicator's threshold set (padded)
    threshold_map: np.ndarray | None  # (K, C, M): tau[k] = threshold_map[k] @ ext[threshold_index[k]]
    key: str  # this group's entry in the arrays dict
    # Ordered kinds: mu as a sum of L broadcast products, draws last, instead of a matrix product and a
    # transpose (Likelihood.for_device: GPU with float32 work, H100 10,000 x 1,000 mixed 15.3 -> 11.5 ms).
    fused: bool = False
    n_levels: tuple[int, ...] = ()  # response levels of each indicator (discrete kinds; 0 for normal ones)
    # Person-level ordered-logit groups through the Pallas kernels of gradfit.kernels.ordered (Likelihood.
    # with_kernels: GPUs, float64 work): None (XLA), "gpu", or "interpret" (the kernels run anywhere; tests).
    kernel: str | None = None
    loads: tuple[tuple[int, ...], ...] = ()  # per indicator, the latent variables it loads on (the kernel's sums)

    def _thresholds(self, v: Values) -> jnp.ndarray:
        """(K, cuts) each indicator's thresholds."""
        return jnp.einsum("kcm,km->kc", jnp.asarray(self.threshold_map, v.ext.dtype), v.ext[self.threshold_index])

    def _answer_thresholds(self, v: Values, a: dict) -> tuple[jnp.ndarray, jnp.ndarray]:
        """The thresholds below and above each answer (one-hot selections: elementwise, no gather/scatter)."""
        tau = self._thresholds(v)
        return jnp.where(a["lo"], tau, 0.0).sum(axis=-1), jnp.where(a["hi"], tau, 0.0).sum(axis=-1)

    def level_probabilities(self, v: Values, eta: jnp.ndarray) -> jnp.ndarray | None:
        """(N, R, K, C) probability of each response level given the latent variables at each draw, C the
        most levels of any indicator in the group (0 beyond an indicator's own levels); None for normal
        indicators, which have no levels. The same for every row of a person: mu depends on the LVs only."""
        if self.kind == "normal":
            return None
        sigma = v.ext[self.scale_index]
        mu = v.ext[self.intercept_index] + eta @ v.ext[self.loading_index].T  # (N, R, K)
        if self.kind == "binary_logit":
            p1 = jax.nn.sigmoid(mu / sigma)
            return jnp.stack([1.0 - p1, p1], axis=-1)
        tau = self._thresholds(v)
        cdf = jax.scipy.stats.norm.cdf if self.kind == "ordered_probit" else jax.nn.sigmoid
        below = cdf((tau - mu[..., None]) / sigma[:, None])  # (N, R, K, C - 1): P(response at or below level c)
        cuts = np.asarray(self.n_levels) - 1
        below = jnp.where(np.arange(below.shape[-1]) < cuts[:, None], below, 1.0)  # padded cuts: nothing above
        zero, one = jnp.zeros_like(below[..., :1]), jnp.ones_like(below[..., :1])
        return jnp.diff(jnp.concatenate([zero, below, one], axis=-1), axis=-1)

    def loglik(self, v: Values, eta: jnp.ndarray, arrays: dict) -> jnp.ndarray:
        """eta (N, R, L) -> summed log-probabilities of the group's indicators, (N, R)."""
        a = arrays[self.key]
        if self.kind == "normal":
            return self._normal_quadratic(v, eta, a)
        sigma = v.ext[self.scale_index]
        if self.kernel is not None and self.kind == "ordered_logit" and self.person_level:
            return self._ordered_kernel(v, eta, a, sigma)
        if self.kind != "binary_logit" and self.fused:
            return self._ordered_fused(v, eta, a, sigma)
        mu = v.ext[self.intercept_index] + eta @ v.ext[self.loading_index].T  # (N, R, K)
        if not self.person_level:
            mu = mu[:, :, None, :]  # (N, R, 1, K) against row data (N, 1, T, K)
        if self.kind == "binary_logit":
            lp = log_binary_logit(a["y"] > 0.5, mu / sigma)
        else:
            lo, hi = self._answer_thresholds(v, a)
            link = "probit" if self.kind == "ordered_probit" else "logit"
            full = jnp.broadcast_shapes(mu.shape, lo.shape)
            # ordered_loglik wants the draws last: data arrays (N, 1, ..., K) -> (N, ..., K, 1).

            def last(x):
                return jnp.moveaxis(x, 1, -1)

            return ordered_loglik(
                last(jnp.broadcast_to(mu, full)),
                last(lo),
                last(hi),
                sigma[:, None],
                last(a["has_lo"]),
                last(a["has_hi"]),
                last(a["obs"]),
                link,
            )
        lp = jnp.where(a["obs"], lp, 0.0)
        return lp.sum(axis=-1) if self.person_level else lp.sum(axis=(-2, -1))

    def _ordered_kernel(self, v: Values, eta: jnp.ndarray, a: dict, sigma) -> jnp.ndarray:
        """Person-level ordered logit through the Pallas kernels (arrays (N, 1, K))."""
        inv = 1.0 / sigma
        lo, hi = self._answer_thresholds(v, a)
        lower, upper = a["obs"] & a["has_lo"], a["obs"] & a["has_hi"]
        intercept, lam = v.ext[self.intercept_index], v.ext[self.loading_index]
        total = ordered_logit_person(
            eta, intercept, lam, inv, lo, hi, lower, upper, self.kernel == "interpret", self.loads or None
        )
        both = lower & upper  # the draw-free term log(1 - exp(a - b)) of answers with two finite thresholds
        gap = jnp.where(both, (lo - hi) * inv, -1.0)
        return total + jnp.where(both, log1mexp(gap), 0.0).sum(axis=(1, 2))[:, None]

    def _ordered_fused(self, v: Values, eta: jnp.ndarray, a: dict, sigma) -> jnp.ndarray:
        """Ordered indicators with mu built draws-last as a sum of L broadcast products (no matrix product)."""
        w = v.ext[self.loading_index]  # (K, L)
        eta_t = jnp.moveaxis(eta, -1, 1)  # (N, L, R)
        mu = v.ext[self.intercept_index][:, None]  # (K, 1)
        for lv in range(w.shape[1]):
            mu = mu + w[:, lv, None] * eta_t[:, lv, None, :]  # (N, K, R)
        if not self.person_level:
            mu = mu[:, None]  # (N, 1, K, R) against row data (N, T, K, 1)
        lo, hi = self._answer_thresholds(v, a)

        def last(x):
            return jnp.moveaxis(x, 1, -1)

        lo, hi = last(lo), last(hi)
        full = jnp.broadcast_shapes(mu.shape, lo.shape)
        link = "probit" if self.kind == "ordered_probit" else "logit"
        return ordered_loglik(
            jnp.broadcast_to(mu, full),
            lo,
            hi,
            sigma[:, None],
            last(a["has_lo"]),
            last(a["has_hi"]),
            last(a["obs"]),
            link,
        )

    def _normal_quadratic(self, v: Values, eta: jnp.ndarray, a: dict) -> jnp.ndarray:
        """Normal indicators as one quadratic in the latent variables per person, (N, R).

        With r = (y - intercept) / sigma and l = loadings / sigma, the summed log-densities over a person's
        observed indicators (and rows) are sum(-r^2 / 2 - log sigma - log(2 pi) / 2) + eta . sum(r l)
        - eta' sum(l l') eta / 2: three person-level sums computed once, then L + L^2 operations per draw
        instead of K indicators x rows of them (h04, nine items, 1,000 draws, 2 cores: value+gradient of the
        measurement part ~100 -> ~5 ms). Expanding the square costs nothing in accuracy at the sizes of
        standardised residuals (|r| up to ~1e3 leaves 1e-10 absolute).
        """
        dt = v.ext.dtype
        inv = 1.0 / v.ext[self.scale_index]  # (K,)
        lam = v.ext[self.loading_index] * inv[:, None]  # (K, L)
        obs = a["obs"].astype(dt)  # (N, K) or (N, 1, T, K)
        r = (a["y"] - v.ext[self.intercept_index]) * inv * obs  # 0 where unobserved
        rows = tuple(range(1, obs.ndim - 1))  # the row axes of row-level indicators (none for person-level)
        const = (-0.5 * r * r - obs * (jnp.log(jnp.abs(v.ext[self.scale_index])) + 0.5 * np.log(2.0 * np.pi))).sum(
            axis=(*rows, -1)
        )  # (N,)
        b = (r @ lam).sum(axis=rows) if rows else r @ lam  # (N, L)
        counts = obs.sum(axis=rows) if rows else obs  # (N, K): observations of each indicator
        c = jnp.einsum("nk,kl,km->nlm", counts, lam, lam)  # (N, L, L)
        linear = (eta * b[:, None, :]).sum(axis=-1)
        quadratic = (eta[..., :, None] * eta[..., None, :] * c[:, None]).sum(axis=(-2, -1))
        return const[:, None] + linear - 0.5 * quadratic


def _indicator_values(
    name: str, ind: IndicatorSpec, df: pd.DataFrame, panel: Panel, source: str
) -> tuple[np.ndarray, np.ndarray]:
    """(values, observed) as (rows,) arrays; missing codes and empty cells are unobserved."""
    col = ind.column or name
    raw = column(df, col, panel.label, f"{source}: indicators.{name}")
    values = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(values) & ~pd.isna(raw)
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raise DataError(
            f"{panel.label}: column {col!r} (indicator {name}) is not a number ({raw[i]!r}) at row "
            f"{panel.file_rows[i]}; use a number (a code listed in `missing` for no answer) or leave the cell empty"
        )
    observed = ~np.isnan(values) & ~np.isin(values, ind.missing)
    return values, observed


def indicator_levels(ind: IndicatorSpec, spec: ModelSpec) -> list[float]:
    """The response values of a discrete indicator, in order (code c of the arrays is the c-th of them)."""
    if ind.type == "binary_logit":
        return list(ind.levels or [0.0, 1.0])
    if ind.levels is not None:
        return list(ind.levels)
    return [float(v) for v in range(1, n_thresholds(spec.thresholds[ind.thresholds]) + 2)]


def build_measurement(
    spec: ModelSpec, df: pd.DataFrame, panel: Panel, coefs: CoefTable, source: str
) -> tuple[list[IndicatorGroup], dict[str, dict[str, np.ndarray]]]:
    lv_names = list(spec.latent_variables)
    groups: list[IndicatorGroup] = []
    arrays: dict[str, dict[str, np.ndarray]] = {}
    keys = sorted({(ind.type, ind.person_level) for ind in spec.indicators.values()})
    for kind, person_level in keys:
        members = [(n, i) for n, i in spec.indicators.items() if i.type == kind and i.person_level == person_level]
        cols: dict[str, list[np.ndarray]] = {"y": [], "obs": [], "lo": [], "hi": [], "has_lo": [], "has_hi": []}
        th_sets = []
        for name, ind in members:
            values, observed = _indicator_values(name, ind, df, panel, source)
            y = values
            if kind != "normal":
                levels = indicator_levels(ind, spec)
                known = np.isin(values, levels)
                bad = observed & ~known
                if bad.any():
                    i = np.flatnonzero(bad)[0]
                    raise DataError(
                        f"{panel.label}: indicator {name} (column {ind.column or name!r}) has value {values[i]:g} "
                        f"at row {panel.file_rows[i]}, not among its levels {levels} or missing codes "
                        f"{ind.missing}; add it to `levels` or `missing`"
                    )
                if person_level:
                    values, observed = _per_person(panel, name, ind, values, observed)
                y = np.where(observed, np.searchsorted(levels, np.where(observed, values, levels[0])), 0)
                if kind != "binary_logit":
                    n_cuts = len(levels) - 1
                    th_sets.append((spec.thresholds[ind.thresholds], n_cuts))
                    cols["lo"].append(np.maximum(y - 1, 0))
                    cols["hi"].append(np.minimum(y, n_cuts - 1))
                    cols["has_lo"].append(y > 0)
                    cols["has_hi"].append(y < n_cuts)
            elif person_level:
                values, observed = _per_person(panel, name, ind, values, observed)
                y = values
            y = np.where(observed, y, 0.0)
            cols["y"].append(y)
            cols["obs"].append(observed)
        key = f"{kind}_{'person' if person_level else 'row'}"
        arr = {}
        for field, lst in cols.items():
            if not lst:
                continue
            if person_level:  # already one value per person (_per_person)
                arr[field] = np.stack(lst, axis=-1)[:, None]  # (N, 1, K): broadcasts against draws
            else:
                stacked = np.stack(lst, axis=-1)  # (rows, K)
                pad = np.zeros((*panel.mask.shape, stacked.shape[1]), dtype=stacked.dtype)
                pad[panel.person, panel.slot] = stacked
                arr[field] = pad[:, None]  # (N, 1, T, K): broadcasts against draws
        if th_sets:
            cuts = max(n for _, n in th_sets)
            for field in ("lo", "hi"):  # threshold index -> one-hot over the thresholds, (..., K, cuts)
                arr[field] = np.eye(cuts, dtype=bool)[arr[field].astype(np.int32)]
        for field in ("obs", "has_lo", "has_hi"):
            if field in arr:
                arr[field] = arr[field].astype(bool)
        arrays[key] = arr
        zero = coefs.index(0.0)
        loading_index = np.full((len(members), len(lv_names)), zero, dtype=np.int32)
        for j, (_, ind) in enumerate(members):
            for lv, value in ind.loadings.items():
                loading_index[j, lv_names.index(lv)] = coefs.index(value)
        th_index = th_map = None
        if th_sets:
            cuts = max(n for _, n in th_sets)
            width = max(len(th.parameters) for th, _ in th_sets)
            th_index = np.full((len(members), width), zero, dtype=np.int32)
            th_map = np.zeros((len(members), cuts, width))
            for j, (th, n) in enumerate(th_sets):
                th_index[j, : len(th.parameters)] = coefs.indices(th.parameters)
                th_map[j, :n, : len(th.parameters)] = threshold_matrix(th, n)
        groups.append(
            IndicatorGroup(
                kind=kind,
                person_level=person_level,
                names=tuple(n for n, _ in members),
                intercept_index=coefs.indices([i.intercept for _, i in members]),
                scale_index=coefs.indices([i.scale for _, i in members]),
                loading_index=loading_index,
                loads=tuple(tuple(lv_names.index(lv) for lv in ind.loadings) for _, ind in members),
                threshold_index=th_index,
                threshold_map=th_map,
                key=key,
                n_levels=tuple(0 if kind == "normal" else len(indicator_levels(i, spec)) for _, i in members),
            )
        )
    return groups, arrays


def _per_person(panel: Panel, name: str, ind: IndicatorSpec, values: np.ndarray, observed: np.ndarray):
    """A person-level indicator's row values -> one value per person (refused if it varies within a person) and
    whether the person answered it. Reduced once, before the fields derived from it (codes, threshold
    positions): checking each derived field again cost 5x the time at 10^5 people."""
    col = ind.column or name
    fix = f"make it constant per person, or set person_level: false on indicator {name}"
    per_person = panel.person_level(values, col, ~observed, fix)
    answered = _any_per_person(panel, observed)
    # a person with no observed value gets NaN: a finite filler keeps the masked branch (and its gradient) finite
    return np.where(answered, per_person, 0.0), answered


def _any_per_person(panel: Panel, observed: np.ndarray) -> np.ndarray:
    out = np.zeros(panel.n_people, dtype=bool)
    np.logical_or.at(out, panel.person, observed)
    return out


def level_shares(groups, arrays: dict, probs: dict[str, np.ndarray], spec: ModelSpec) -> pd.DataFrame:
    """Observed and predicted share of each response level of each discrete indicator: columns indicator, level,
    observed, predicted. probs: per group key, (N, K, C) level probabilities of each person (padding people
    cut off); an indicator's predicted share weighs each person by the answers observed (rows, for row-level
    indicators), as the observed share does."""
    rows = []
    for group in groups:
        if group.key not in probs:
            continue
        p = probs[group.key]
        y, obs = np.asarray(arrays[group.key]["y"]), np.asarray(arrays[group.key]["obs"])  # (N, 1, [T,] K)
        n = len(p)
        y, obs = y[:n].reshape(n, -1, y.shape[-1]), obs[:n].reshape(n, -1, obs.shape[-1])  # (N, T, K)
        answers = obs.sum(axis=1)  # (N, K)
        for k, name in enumerate(group.names):
            total = max(answers[:, k].sum(), 1)
            for c, level in enumerate(indicator_levels(spec.indicators[name], spec)):
                observed = ((y[:, :, k] == c) & obs[:, :, k]).sum() / total
                rows.append((name, level, observed, (answers[:, k] * p[:, k, c]).sum() / total))
    return pd.DataFrame(rows, columns=["indicator", "level", "observed", "predicted"])
