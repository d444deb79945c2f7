"""Tests of gradfit.core.quadrature against exact normal moments and adaptive integration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.polynomial.hermite import hermgauss
from scipy import integrate, stats
from scipy.special import expit, logsumexp

from gradfit.core.quadrature import gauss_hermite_normal
from gradfit.errors import SpecError


def expect(f, n_points: int, dim: int) -> float:
    nodes, log_weights = gauss_hermite_normal(n_points, dim)
    return float(np.exp(log_weights) @ f(nodes))


@pytest.mark.parametrize(("n_points", "dim"), [(1, 1), (2, 1), (7, 1), (100, 1), (5, 2), (30, 2), (4, 3), (12, 3)])
def test_shapes_and_weights_sum_to_one(n_points: int, dim: int) -> None:
    nodes, log_weights = gauss_hermite_normal(n_points, dim)
    assert nodes.shape == (n_points**dim, dim)
    assert log_weights.shape == (n_points**dim,)
    assert np.all(np.isfinite(log_weights))
    assert abs(np.exp(log_weights).sum() - 1.0) < 1e-13
    assert abs(logsumexp(log_weights)) < 1e-13


def test_tensor_layout_first_coordinate_slowest() -> None:
    nodes, log_weights = gauss_hermite_normal(3, 2)
    x, lw = gauss_hermite_normal(3, 1)
    np.testing.assert_array_equal(nodes[:, 0], np.repeat(x[:, 0], 3))
    np.testing.assert_array_equal(nodes[:, 1], np.tile(x[:, 0], 3))
    np.testing.assert_allclose(log_weights, np.repeat(lw, 3) + np.tile(lw, 3), rtol=0, atol=1e-15)


def test_normal_moments_1d() -> None:
    # 5 points integrate polynomials up to degree 9 exactly.
    assert abs(expect(lambda z: z[:, 0], 5, 1)) < 1e-14
    assert abs(expect(lambda z: z[:, 0] ** 2, 5, 1) - 1.0) < 1e-12
    assert abs(expect(lambda z: z[:, 0] ** 3, 5, 1)) < 1e-12
    assert abs(expect(lambda z: z[:, 0] ** 4, 5, 1) - 3.0) < 1e-12
    assert abs(expect(lambda z: z[:, 0] ** 8, 5, 1) - 105.0) < 1e-10


def test_normal_moments_2d_and_3d() -> None:
    assert abs(expect(lambda z: z[:, 0] ** 2 * z[:, 1] ** 2, 4, 2) - 1.0) < 1e-12
    assert abs(expect(lambda z: z[:, 0] * z[:, 1], 4, 2)) < 1e-12
    assert abs(expect(lambda z: z[:, 0] ** 4 * z[:, 1] ** 2, 4, 2) - 3.0) < 1e-12
    assert abs(expect(lambda z: (z**2).prod(axis=1), 3, 3) - 1.0) < 1e-12
    assert abs(expect(lambda z: z[:, 2] ** 4, 3, 3) - 3.0) < 1e-12


def test_lognormal_mean() -> None:
    a = 1.3
    assert abs(expect(lambda z: np.exp(a * z[:, 0]), 20, 1) - math.exp(a**2 / 2)) < 1e-10


def test_lognormal_mean_2d() -> None:
    a, b = 0.7, -0.4
    got = expect(lambda z: np.exp(a * z[:, 0] + b * z[:, 1]), 20, 2)
    assert abs(got - math.exp((a**2 + b**2) / 2)) < 1e-10


def test_logistic_cdf_expectation_matches_adaptive_quadrature() -> None:
    expected, abserr = integrate.quad(
        lambda z: expit(1.0 + 2.0 * z) * stats.norm.pdf(z), -np.inf, np.inf, epsabs=1e-14, epsrel=1e-13
    )
    assert abserr < 1e-11
    assert abs(expect(lambda z: expit(1.0 + 2.0 * z[:, 0]), 100, 1) - expected) < 1e-8


def test_hundred_points_have_finite_and_accurate_log_weights() -> None:
    nodes, log_weights = gauss_hermite_normal(100, 1)
    assert np.all(np.isfinite(log_weights))
    assert log_weights.min() < -150  # the extreme weights are ~1e-79: genuinely tiny, still exact in log
    # Independent formula: w_i = 1 / (n * p_{n-1}(x_i)**2) with orthonormal Hermite polynomials p_k
    # (p_{k+1} = (x p_k - sqrt(k) p_{k-1}) / sqrt(k + 1)), which stays within float64 range for n = 100.
    x = nodes[:, 0]
    p_prev, p = np.zeros_like(x), np.ones_like(x)
    for k in range(99):
        p_prev, p = p, (x * p - math.sqrt(k) * p_prev) / math.sqrt(k + 1)
    np.testing.assert_allclose(log_weights, -math.log(100) - 2 * np.log(np.abs(p)), rtol=0, atol=1e-10)
    # In three dimensions the smallest product weight (~1e-236) is still finite in log space.
    _, log_weights_3d = gauss_hermite_normal(100, 3)
    assert np.all(np.isfinite(log_weights_3d))
    assert abs(logsumexp(log_weights_3d)) < 1e-12


def test_physicists_convention_is_the_same_rule_after_rescaling() -> None:
    """hermgauss (weight exp(-x**2)) needs nodes * sqrt(2) and weights / sqrt(pi), as documented."""
    x_phys, w_phys = hermgauss(15)
    nodes, log_weights = gauss_hermite_normal(15, 1)
    np.testing.assert_allclose(nodes[:, 0], np.sqrt(2.0) * x_phys, atol=1e-13)
    np.testing.assert_allclose(np.exp(log_weights), w_phys / np.sqrt(np.pi), rtol=1e-12)


def test_too_many_dimensions_suggests_draws() -> None:
    with pytest.raises(SpecError, match="Monte Carlo"):
        gauss_hermite_normal(5, 4)


@pytest.mark.parametrize(("n_points", "dim"), [(0, 1), (-3, 1), (5, 0), (2.5, 1), (True, 1), (301, 1)])
def test_bad_arguments(n_points: object, dim: object) -> None:
    with pytest.raises(SpecError):
        gauss_hermite_normal(n_points, dim)  # type: ignore[arg-type]


def test_largest_allowed_rule_is_valid() -> None:
    nodes, log_weights = gauss_hermite_normal(300, 1)
    assert np.all(np.isfinite(nodes)) and np.all(np.isfinite(log_weights))
    assert abs(float(np.exp(log_weights) @ nodes[:, 0] ** 2) - 1.0) < 1e-10


def test_biogeme_rule_is_the_physicists_rule_applied_to_f_phi_exp_x2():
    """Independent construction from numpy's physicists' rule: sum_i w_i exp(x_i^2) phi(x_i) f(x_i)."""
    from numpy.polynomial.hermite import hermgauss

    x, w = hermgauss(40)
    phi = np.exp(-0.5 * x**2) / np.sqrt(2 * np.pi)

    def f(z):
        return 1.0 / (1.0 + np.exp(-3.0 * z + 0.5))  # a smooth, non-polynomial integrand

    expected = np.sum(w * np.exp(x**2) * phi * f(x))
    nodes, log_w = gauss_hermite_normal(40, 1, "biogeme")
    np.testing.assert_allclose(nodes[:, 0], x, rtol=0, atol=0)
    assert np.sum(np.exp(log_w) * f(nodes[:, 0])) == pytest.approx(expected, rel=1e-13)
    # a different rule from the standard one, though both approximate E f(Z)
    std_nodes, std_log_w = gauss_hermite_normal(40, 1)
    standard = np.sum(np.exp(std_log_w) * f(std_nodes[:, 0]))
    assert standard == pytest.approx(expected, rel=1e-3) and standard != pytest.approx(expected, rel=1e-12)


def test_unknown_rule_is_rejected():
    with pytest.raises(SpecError, match="rule"):
        gauss_hermite_normal(5, 1, "legendre")
