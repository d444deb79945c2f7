"""Stable log-probabilities: everything in logs, finite inputs on every branch, so gradients never see NaN.

`jnp.where` evaluates both branches and differentiates both; a branch fed ±inf (an open-ended ordered
category, say) poisons the gradient with 0 * inf = NaN even where it is not selected. So every function here
substitutes harmless finite values before computing, and selects afterwards.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr, logsumexp

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


def log_cdf(x: jax.Array, link: Link) -> jax.Array:
    """log F(x) for the standard normal (probit) or logistic (logit) distribution."""
    return log_ndtr(x) if link == "probit" else log_sigmoid(x)


# Stands in for an infinite threshold: far enough out that F(-BIG) is 0 and F(BIG) is 1 to double precision,
# small enough that BIG**2 stays finite even in float32 (log_ndtr squares its argument in the tail).
_BIG = 1e6


def log_interval(a: jax.Array, b: jax.Array, link: Link) -> jax.Array:
    """log(F(b) - F(a)) for a < b, with F symmetric.

    Logistic: F(b) - F(a) = F(b) F(-a) (1 - exp(a - b)) exactly, three terms that logs represent without
    cancellation anywhere on the line. Normal: when both ends lie in the upper tail, F(b) - F(a) is a difference
    of two numbers near 1; by symmetry it equals F(-a) - F(-b), a difference of two small numbers.
    """
    if link == "logit":
        return log_sigmoid(b) + log_sigmoid(-a) + log1mexp(a - b)
    upper_tail = a > 0
    lo = jnp.where(upper_tail, -b, a)
    hi = jnp.where(upper_tail, -a, b)
    log_hi = log_cdf(hi, link)
    return log_hi + log1mexp(log_cdf(lo, link) - log_hi)


def log_ordered(a: jax.Array, b: jax.Array, has_lower: jax.Array, has_upper: jax.Array, link: Link) -> jax.Array:
    """Log-probability of an ordered category with standardised bounds a = (tau_lo - mu)/s, b = (tau_hi - mu)/s.

    `has_lower` / `has_upper` are False for the first / last category (bound at -inf / +inf); the bound
    values there are ignored. An open end is replaced by ∓BIG through `where`, so it carries no gradient and
    every case is one `log_interval`: two log-CDFs and one log1mexp per observation. The stand-in lies BIG
    beyond the finite bound (and beyond 0), so it stays outside even when that bound is itself far out.
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


def log_softmax_chosen(utilities: jax.Array, available: jax.Array, chosen: jax.Array) -> jax.Array:
    """log P(chosen) under a multinomial logit over the available alternatives (last axis).

    `available` must hold at least one True per choice situation; `chosen` is a one-hot boolean array
    broadcastable to utilities.shape.
    """
    masked = jnp.where(available, utilities, -jnp.inf)
    log_denominator = logsumexp(masked, axis=-1)
    # A one-hot sum rather than take_along_axis: its backward pass is elementwise instead of a scatter.
    picked = jnp.where(chosen, utilities, 0.0).sum(axis=-1)
    return picked - log_denominator


def log_mean_exp(x: jax.Array, log_weights: jax.Array, axis: int = -1) -> jax.Array:
    """log sum_r w_r exp(x_r), the simulated (or quadrature) integral in logs; weights sum to 1."""
    return logsumexp(x + log_weights, axis=axis)


def contract(a: jax.Array, b: jax.Array) -> jax.Array:
    """a @ b for a small inner dimension (latent variables, alternatives), as multiply-and-sum.

    A matrix-multiply call for a 5-wide contraction costs a kernel of its own plus padding copies on a GPU;
    written elementwise, XLA fuses it into the surrounding arithmetic, forward and backward.
    """
    return (a[..., :, None] * b).sum(axis=-2)
