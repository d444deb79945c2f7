"""Stable log-probabilities: everything in logs, finite inputs on every branch, so gradients never see NaN.

`jnp.where` evaluates both branches and differentiates both; a branch fed ±inf (an open-ended ordered
category, say) poisons the gradient with 0 * inf = NaN even where it is not selected. So every function here
substitutes harmless finite values before computing, and selects afterwards.
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from gradfit.core._probit import _BIG, _log_interval_probit, _probit_forward

Link = Literal["probit", "logit"]


def log1mexp(x: jax.Array) -> jax.Array:
    """log(1 - exp(x)) for x < 0.

    One expression, accurate in absolute terms everywhere (all a log-likelihood needs): near 0, expm1 keeps the
    small difference exact; far below 0 the result is -exp(x) ~ 0 and rounds to it. The two-branch form
    (Mächler 2012) buys relative accuracy of such negligible values at twice the transcendental work.
    """
    return jnp.log(-jnp.expm1(x))


def log_sigmoid(x: jax.Array) -> jax.Array:
    """log(1 / (1 + exp(-x))) = min(x, 0) - log1p(exp(-|x|)): one exp and one log1p, stable on the whole line."""
    return jnp.minimum(x, 0.0) - jnp.log1p(jnp.exp(-jnp.abs(x)))


def log_interval(a: jax.Array, b: jax.Array, link: Link) -> jax.Array:
    """log(F(b) - F(a)) for a < b, with F the logistic or standard normal CDF.

    Both have hand-written derivatives (custom JVPs) built from the forward pass's own intermediates: autodiff
    of the same expressions would recompute the exponentials and keep several people x draws x indicators
    arrays alive for the backward pass, which measured 4x the forward time.
    """
    return _log_interval_logit(a, b) if link == "logit" else _log_interval_probit(a, b)


def _logit_parts(a, b):
    """log(F(b) - F(a)) and its partial derivatives in a and b, for the logistic F.

    F(b) - F(a) = F(b) F(-a) (1 - exp(a - b)) exactly: three factors that logs represent without cancellation
    anywhere on the line. With m = expm1(a - b): d/db = F(-b) + r, d/da = -F(a) - r, r = (1 + m) / -m.
    """
    ea, eb = jnp.exp(-jnp.abs(a)), jnp.exp(-jnp.abs(b))
    m = jnp.expm1(a - b)
    value = jnp.minimum(b, 0.0) - jnp.log1p(eb) + jnp.minimum(-a, 0.0) - jnp.log1p(ea) + jnp.log(-m)
    f_a = jnp.where(a >= 0, 1.0, ea) / (1.0 + ea)  # F(a), from exp(-|a|) without overflow
    f_neg_b = jnp.where(b >= 0, eb, 1.0) / (1.0 + eb)  # F(-b)
    r = (1.0 + m) / -m  # = 1 / expm1(b - a)
    return value, -f_a - r, f_neg_b + r


@jax.custom_jvp
def _log_interval_logit(a, b):
    return _logit_parts(a, b)[0]


@_log_interval_logit.defjvp
def _log_interval_logit_jvp(primals, tangents):
    value, d_a, d_b = _logit_parts(*primals)
    return value, d_a * tangents[0] + d_b * tangents[1]


def log_ordered(a: jax.Array, b: jax.Array, has_lower: jax.Array, has_upper: jax.Array, link: Link) -> jax.Array:
    """Log-probability of an ordered category with standardised bounds a = (tau_lo - mu)/s, b = (tau_hi - mu)/s.

    `has_lower` / `has_upper` are False for the first / last category (bound at -inf / +inf); the bound
    values there are ignored. An open end is replaced by ∓BIG through `where`, so it carries no gradient and
    every case is one `log_interval`. The stand-in lies BIG beyond the finite bound (and beyond 0), so it
    stays outside even when that bound is itself far out.
    """
    lo = jnp.where(has_lower, a, jax.lax.stop_gradient(jnp.minimum(b, 0.0)) - _BIG)
    hi = jnp.where(has_upper, b, jax.lax.stop_gradient(jnp.maximum(a, 0.0)) + _BIG)
    return log_interval(lo, hi, link)


def log_normal_density(y: jax.Array, mu: jax.Array, sigma: jax.Array) -> jax.Array:
    """log N(y; mu, sigma^2)."""
    z = (y - mu) / sigma
    return -0.5 * z * z - jnp.log(jnp.abs(sigma)) - 0.5 * jnp.log(2.0 * jnp.pi)


def log_binary_logit(y_is_one: jax.Array, v: jax.Array) -> jax.Array:
    """log P(y) for P(y = 1) = sigmoid(v)."""
    return log_sigmoid(jnp.where(y_is_one, v, -v))


@jax.custom_jvp
def log_softmax_chosen(utilities: jax.Array, available: jax.Array, chosen: jax.Array) -> jax.Array:
    """log P(chosen) under a multinomial logit over the available alternatives (last axis).

    `available` must hold at least one True per choice situation; `chosen` is a one-hot boolean array
    broadcastable to utilities.shape. The derivative (one-hot minus probabilities) reuses the forward pass's
    probabilities instead of recomputing the exponentials.
    """
    return _softmax_parts(utilities, available, chosen)[0]


def _softmax_parts(utilities, available, chosen):
    top = jax.lax.stop_gradient(jnp.max(jnp.where(available, utilities, -jnp.inf), axis=-1, keepdims=True))
    e = jnp.where(available, jnp.exp(utilities - top), 0.0)
    total = e.sum(axis=-1, keepdims=True)
    # A one-hot sum rather than take_along_axis: elementwise both ways instead of a gather and a scatter.
    picked = jnp.where(chosen, utilities, 0.0).sum(axis=-1)
    value = picked - (top + jnp.log(total))[..., 0]
    return value, chosen.astype(utilities.dtype) - e / total


@log_softmax_chosen.defjvp
def _log_softmax_chosen_jvp(primals, tangents):
    value, d_u = _softmax_parts(*primals)
    return value, (d_u * tangents[0]).sum(axis=-1)


def log_mean_exp(x: jax.Array, log_weights: jax.Array, axis: int = -1) -> jax.Array:
    """log sum_r w_r exp(x_r), the simulated (or quadrature) integral in logs; weights sum to 1."""
    return logsumexp(x + log_weights, axis=axis)


def _sigmoid(x):
    e = jnp.exp(-jnp.abs(x))
    return jnp.where(x >= 0, 1.0, e) / (1.0 + e)


def _ordered_forward(mu, lo_tau, hi_tau, sigma, has_lower, has_upper, observed, link, residuals=True):
    """Per-draw sums (N, R) and, with residuals, the partial derivatives in a and b (N, ..., K, R).

    Logit: log(F(b) - F(a)) = log F(b) + log F(-a) + log(1 - exp(a - b)), and a - b = (lo - hi) / sigma does
    not depend on mu: the last term is computed once per response, outside the draws; only two softplus
    functions remain per draw, and the partials are -F(a) and F(-b). Each output is a separate loop on XLA's
    CPU backend (it recomputes what it needs), so keeping them this cheap matters as much as their number.

    Probit: see `_probit_forward`.
    """
    inv = 1.0 / sigma
    lower, upper = observed & has_lower, observed & has_upper
    if link == "logit":
        a, b = (lo_tau - mu) * inv, (hi_tau - mu) * inv
        # -softplus(-b) - softplus(a) = -max(-b, 0) - max(a, 0) - log((1 + e^-|b|)(1 + e^-|a|)): one log of a
        # product in [1, 4] instead of two log1p; an open end contributes log 1 = 0.
        e_a = jnp.where(lower, jnp.exp(-jnp.abs(a)), 0.0)
        e_b = jnp.where(upper, jnp.exp(-jnp.abs(b)), 0.0)
        linear = jnp.where(upper, jnp.maximum(-b, 0.0), 0.0) + jnp.where(lower, jnp.maximum(a, 0.0), 0.0)
        per_draw = -(linear + jnp.log((1.0 + e_a) * (1.0 + e_b)))
        d_a = jnp.where(lower, -_sigmoid(a), 0.0)
        d_b = jnp.where(upper, _sigmoid(-b), 0.0)
    else:
        per_draw, d_a, d_b = _probit_forward(mu, lo_tau, hi_tau, inv, has_lower, has_upper, residuals)
        per_draw = jnp.where(observed, per_draw, 0.0)
        if residuals:
            d_a = jnp.where(lower, d_a, 0.0)  # open ends and missing answers carry no gradient
            d_b = jnp.where(upper, d_b, 0.0)
    total = per_draw.sum(axis=tuple(range(1, mu.ndim - 1)))
    return total, (d_a, d_b, mu, lo_tau, hi_tau, inv)


def ordered_loglik(mu, lo_tau, hi_tau, sigma, has_lower, has_upper, observed, link: Link):
    """Summed log-probabilities of ordered responses, (N, R), from mu (N, ..., K, R) with draws last.

    mu has its full shape (no broadcast axes); lo_tau / hi_tau (N, ..., K, 1) are each response's two
    thresholds, sigma (K, 1) the scales, the masks (N, ..., K, 1) as in `log_ordered`.

    Draws sit on the last axis because every data array is then constant along the innermost loop, which
    XLA's CPU backend vectorises, and every reduction over draws runs along contiguous memory. The reverse
    pass is written by hand from the elementwise partials the forward pass keeps.
    """
    total = _ordered(mu, lo_tau, hi_tau, sigma, has_lower, has_upper, observed, link)
    if link == "logit":  # the draw-free term log(1 - exp(a - b)) of both-ends-finite responses
        both = observed & has_lower & has_upper
        gap = jnp.where(both, (lo_tau - hi_tau) / sigma, -1.0)
        total = total + jnp.where(both, log1mexp(gap), 0.0).sum(axis=tuple(range(1, mu.ndim)))[:, None]
    return total


@partial(jax.custom_vjp, nondiff_argnums=(7,))
def _ordered(mu, lo_tau, hi_tau, sigma, has_lower, has_upper, observed, link):
    return _ordered_forward(mu, lo_tau, hi_tau, sigma, has_lower, has_upper, observed, link, residuals=False)[0]


def _ordered_fwd(mu, lo_tau, hi_tau, sigma, has_lower, has_upper, observed, link):
    return _ordered_forward(mu, lo_tau, hi_tau, sigma, has_lower, has_upper, observed, link)


def _ordered_bwd(link, res, g):
    d_a, d_b, mu, lo_tau, hi_tau, inv = res
    # g (N, R) against arrays (N, ..., K, R): every reduction is over the innermost, contiguous draws axis.
    g = g.reshape(g.shape[:1] + (1,) * (d_a.ndim - 2) + g.shape[1:])
    ga, gb = d_a * g, d_b * g
    s_a = ga.sum(axis=-1, keepdims=True)
    s_b = gb.sum(axis=-1, keepdims=True)
    s_mu = ((ga + gb) * mu).sum(axis=-1, keepdims=True)
    # a = (lo - mu) / sigma, so d/dsigma = -(d_a (lo - mu) + d_b (hi - mu)) / sigma^2, summed.
    per_response = lo_tau * s_a + hi_tau * s_b - s_mu
    g_sigma = -per_response.reshape(-1, d_a.shape[-2]).sum(axis=0)[:, None] * inv * inv
    return -(ga + gb) * inv, s_a * inv, s_b * inv, g_sigma, None, None, None


_ordered.defvjp(_ordered_fwd, _ordered_bwd)
