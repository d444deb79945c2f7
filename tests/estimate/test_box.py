"""The box trust-region subproblem (estimate._box) against brute force and closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from gradfit.estimate._box import cauchy_point, damped_bfgs, truncated_cg


def model(x, x0, g, H):
    s = x - x0
    return g @ s + 0.5 * s @ H @ s


def random_problem(seed: int, n: int = 6, definite: bool = True):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, n))
    H = A @ A.T + 0.1 * np.eye(n) if definite else A + A.T
    x0 = rng.normal(size=n)
    g = rng.normal(size=n) * 3
    radius = rng.uniform(0.05, 1.0)
    lo = np.maximum(x0 - radius, x0 - rng.uniform(0, 0.5, n))  # some bounds closer than the trust region
    hi = np.minimum(x0 + radius, x0 + rng.uniform(0, 0.5, n))
    lo[0] = x0[0]  # one parameter starts at its lower bound
    return x0, g, H, lo, hi


def first_minimiser_on_projected_path(x0, g, H, lo, hi):
    """Brute force: m(P(x0 - t g)) on a fine grid of t, first grid point after which m rises."""
    t_max = np.max(np.abs(hi - lo)) / max(np.min(np.abs(g[g != 0])), 1e-12)
    ts = np.linspace(0.0, t_max, 400_001)
    path = np.clip(x0[None, :] - ts[:, None] * g[None, :], lo, hi)
    values = np.einsum("ti,i->t", path - x0, g) + 0.5 * np.einsum("ti,ij,tj->t", path - x0, H, path - x0)
    rising = np.flatnonzero(np.diff(values) > 1e-15)
    i = rising[0] if rising.size else len(ts) - 1
    return path[i], values[i]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("definite", [True, False])
def test_cauchy_point_is_the_first_minimiser_along_the_projected_path(seed, definite):
    x0, g, H, lo, hi = random_problem(seed, definite=definite)
    xc = cauchy_point(x0, g, H, lo, hi)
    assert np.all(xc >= lo) and np.all(xc <= hi)
    brute, value = first_minimiser_on_projected_path(x0, g, H, lo, hi)
    assert model(xc, x0, g, H) == pytest.approx(value, abs=1e-6 * max(1.0, abs(value)))
    np.testing.assert_allclose(xc, brute, atol=2e-4)


def test_truncated_cg_reaches_the_newton_point_inside_a_large_box():
    x0, g, H, _, _ = random_problem(1)
    lo, hi = x0 - 1e6, x0 + 1e6
    x = truncated_cg(x0, g, H, lo, hi, cauchy_point(x0, g, H, lo, hi), 1e-12)
    np.testing.assert_allclose(x, x0 - np.linalg.solve(H, g), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("definite", [True, False])
def test_truncated_cg_stays_in_the_box_and_improves_on_the_cauchy_point(seed, definite):
    x0, g, H, lo, hi = random_problem(seed, definite=definite)
    xc = cauchy_point(x0, g, H, lo, hi)
    x = truncated_cg(x0, g, H, lo, hi, xc, 1e-10)
    assert np.all(x >= lo) and np.all(x <= hi)
    assert model(x, x0, g, H) <= model(xc, x0, g, H) + 1e-12
    assert model(x, x0, g, H) < 0  # a descent step: g is not zero
    # Parameters held at a bound at the Cauchy point do not move.
    held = (xc <= lo) | (xc >= hi)
    np.testing.assert_array_equal(x[held], xc[held])


def test_damped_bfgs_meets_the_secant_equation_and_stays_positive_definite():
    rng = np.random.default_rng(0)
    H = np.eye(4)
    s = rng.normal(size=4)
    y = 2.0 * s + 0.1 * rng.normal(size=4)  # s'y > 0.2 s'Hs: the plain update
    H1 = damped_bfgs(H, s, y)
    np.testing.assert_allclose(H1 @ s, y, rtol=1e-12)
    H2 = damped_bfgs(H1, s, -y)  # negative curvature along s: damped, still definite
    assert np.all(np.linalg.eigvalsh(H2) > 0)
    np.testing.assert_allclose(H2, H2.T, atol=1e-12)
