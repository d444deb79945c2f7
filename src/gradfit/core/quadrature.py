"""Gauss-Hermite quadrature for expectations over standard normal variables.

For models with one to three normal random terms, a tensor-product Gauss-Hermite rule replaces simulation
draws: ``E[f(Z)] ~= sum_k exp(log_weights[k]) * f(nodes[k])`` for ``Z ~ N(0, I_dim)``.  The rule with
``n`` points per dimension is exact for polynomials of degree up to ``2n - 1`` in each coordinate.

Convention.  gradfit uses the *probabilists'* Hermite rule (``numpy.polynomial.hermite_e.hermegauss``,
weight function ``exp(-x**2 / 2)``), whose nodes are directly standard normal values; dividing the weights
by their sum, ``sqrt(2 * pi)`` per dimension, turns them into probabilities.  The *physicists'* rule
(``numpy.polynomial.hermite.hermgauss``, weight ``exp(-x**2)``), used for instance by Biogeme, gives the
same rule only after scaling its nodes by ``sqrt(2)`` and its weights by ``1 / sqrt(pi)``:
``E[f(Z)] ~= sum_i w_i / sqrt(pi) * f(sqrt(2) * x_i)``.  Mixing the two conventions up silently produces
a wrong variance, so compare node sets with this in mind.

Biogeme's rule (``rule="biogeme"``, for replicating its published numbers).  Biogeme 3.2 integrates
``E[f(Z)] = integral f(w) phi(w) dw`` by applying the physicists' rule to ``g(x) = f(x) phi(x) exp(x**2)``:
nodes ``x_i`` unscaled and weights ``w_i exp(x_i**2) phi(x_i)``.  For polynomial ``f`` this is not exact
(``phi(x) exp(x**2)`` is not a polynomial), its weights do not sum to exactly 1, and for steep integrands it
can differ from the standard rule by a log-likelihood unit or more (docs/spec.md, integration).  It is offered
to reproduce Biogeme's results, not as a better rule.
"""

from __future__ import annotations

import math
import operator

import numpy as np
from numpy.polynomial.hermite import hermgauss
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import logsumexp

from gradfit.errors import SpecError

__all__ = ["MAX_QUADRATURE_DIM", "MAX_QUADRATURE_POINTS", "gauss_hermite_normal"]

#: Tensor-product rules grow as n_points**dim; beyond three dimensions simulation draws are the better tool.
MAX_QUADRATURE_DIM = 3
#: numpy's hermegauss returns NaN weights from about 400 points on (its internal scaling underflows) and
#: its smallest weights turn denormal near 350; up to 300 points every weight is a normal float64 (the
#: smallest is about 2e-248), so its log is accurate.  Far fewer points are ever needed in practice.
MAX_QUADRATURE_POINTS = 300


RULES = ("standard", "biogeme")


def gauss_hermite_normal(n_points: int, dim: int, rule: str = "standard") -> tuple[np.ndarray, np.ndarray]:
    """Tensor-product Gauss-Hermite rule for ``Z ~ N(0, I_dim)``.

    Returns ``nodes`` of shape ``(K, dim)`` and ``log_weights`` of shape ``(K,)``, float64, with
    ``sum(exp(log_weights)) == 1`` (to rounding) and ``E[f(Z)] ~= sum_k exp(log_weights[k]) * f(nodes[k])``.
    ``K = n_points**dim``; the first coordinate varies slowest.  ``1 <= n_points <= 300`` and
    ``1 <= dim <= 3``, otherwise `SpecError`.

    Weights are combined in log space, so products of many small weights (e.g. 100 points in three
    dimensions, where the smallest product is about 1e-236) stay finite and accurate; evaluate the
    expectation with a log-sum-exp.
    """
    n_points = _positive_int("n_points", n_points)
    dim = _positive_int("dim", dim)
    if dim > MAX_QUADRATURE_DIM:
        raise SpecError(
            f"Gauss-Hermite quadrature supports at most {MAX_QUADRATURE_DIM} normal dimensions, got {dim}; "
            "use Monte Carlo draws (e.g. 'sobol' or 'mlhs') for more random terms"
        )
    if n_points > MAX_QUADRATURE_POINTS:
        raise SpecError(
            f"Gauss-Hermite quadrature supports at most {MAX_QUADRATURE_POINTS} points per dimension, "
            f"got {n_points}; use fewer points (20 to 100 are usually ample)"
        )

    if rule not in RULES:
        raise SpecError(f"quadrature rule must be one of {RULES}, got {rule!r}")
    if rule == "biogeme":
        x, w = hermgauss(n_points)
        if not np.all(w > 0):
            raise SpecError(f"the biogeme rule with {n_points} points underflows; use at most 150 points")
        # log(w_i exp(x_i^2) phi(x_i)) = log w_i + x_i^2 / 2 - log(2 pi) / 2; not renormalised, as in Biogeme.
        log_w = np.log(w) + 0.5 * x**2 - 0.5 * math.log(2.0 * math.pi)
        return _tensor(x, log_w, dim)
    x, w = hermegauss(n_points)
    total = w.sum()
    # The probabilists' weights integrate exp(-x**2 / 2), whose integral is sqrt(2 * pi) (numpy rescales
    # them to that sum): a guard against NaN or overflow from numpy before normalising to sum 1 in log space.
    if not np.all(w > 0) or not math.isclose(total, math.sqrt(2.0 * math.pi), rel_tol=1e-10):
        raise RuntimeError(f"hermegauss({n_points}) weights sum to {total!r}, not sqrt(2*pi)")
    log_w = np.log(w)
    log_w -= logsumexp(log_w)
    return _tensor(x, log_w, dim)


def _tensor(x: np.ndarray, log_w: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    grids = np.meshgrid(*([x] * dim), indexing="ij")
    nodes = np.stack([g.ravel() for g in grids], axis=1)
    log_weight_grids = np.meshgrid(*([log_w] * dim), indexing="ij")
    log_weights = np.sum([g.ravel() for g in log_weight_grids], axis=0)
    return nodes, log_weights


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool):
        raise SpecError(f"quadrature {name} must be a positive integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise SpecError(f"quadrature {name} must be a positive integer, got {value!r}") from None
    if value < 1:
        raise SpecError(f"quadrature {name} must be a positive integer, got {value}")
    return value
