"""Uncertainty of functions of the estimates: the delta method (autodiff Jacobian) and Krinsky-Robb draws.

Delta method: g(theta) ~ N(g(theta_hat), J V J'), J the exact Jacobian of g at the estimates (jax), V the
robust covariance. Krinsky-Robb: draw theta_s ~ N(theta_hat, V), evaluate g at each, and read the interval
off the percentiles: no linearisation, so for a ratio like a value of time it shows the skew the delta
method cannot. For a g that is (nearly) linear in theta the two agree.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from gradfit.errors import GradfitError


def delta_method(fn: Callable, theta: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value and standard error of fn(theta) (any shape). The Jacobian is taken in reverse mode when fn has
    fewer outputs than there are parameters (shares, elasticities), in forward mode otherwise (per-row values)."""
    x = jnp.asarray(theta, dtype=jnp.float64)
    value = np.asarray(fn(x), dtype=float)
    jac_fn = jax.jacrev(fn) if value.size < x.size else jax.jacfwd(fn)
    jac = np.asarray(jac_fn(x), dtype=float).reshape(value.size, x.size)
    var = np.einsum("ip,pq,iq->i", jac, cov, jac)
    return value, np.sqrt(np.maximum(var, 0.0)).reshape(value.shape)


def parameter_draws(theta: np.ndarray, cov: np.ndarray, n: int, seed: int) -> np.ndarray:
    """(n, P) draws from N(theta, cov). The square root comes from the eigen-decomposition, which also takes a
    covariance that is only positive semi-definite (a parameter at a bound: zero variance)."""
    lam, vec = np.linalg.eigh(0.5 * (cov + cov.T))
    if lam.size and lam[0] < -1e-8 * max(abs(lam[-1]), 1e-300):
        raise GradfitError("the covariance of the estimates is not positive semi-definite; Krinsky-Robb draws need it")
    root = vec * np.sqrt(np.maximum(lam, 0.0))
    z = np.random.default_rng(seed).standard_normal((n, len(theta)))
    return theta + z @ root.T


def normal_interval(value, se, level: float) -> tuple[np.ndarray, np.ndarray]:
    q = stats.norm.ppf(0.5 + level / 2)
    return value - q * se, value + q * se


def percentile_interval(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over the first axis (the draws)."""
    lo, hi = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)], axis=0)
    return lo, hi
