"""The maximisers on likelihoods whose maximum is known in closed form, with and without active bounds."""

from __future__ import annotations

import numpy as np
import pytest

from gradfit.estimate.optimize import OPTIMIZERS, maximize
from gradfit.estimate.problem import Problem

METHODS = sorted(OPTIMIZERS)


def normal_problem(y: np.ndarray, start, lower=(-np.inf, -np.inf), upper=(np.inf, np.inf)) -> Problem:
    """i.i.d. N(mu, exp(2 log_s)) log-likelihood in (mu, log_s), scaled so mu and log_s differ in curvature."""

    def per_obs(theta):
        mu, log_s = theta
        z = (y - mu) * np.exp(-log_s)
        ll = -0.5 * z**2 - log_s - 0.5 * np.log(2 * np.pi)
        scores = np.stack([z * np.exp(-log_s), z**2 - 1.0], axis=1)
        return ll, scores

    def value_and_grad(theta):
        ll, s = per_obs(theta)
        return float(ll.sum()), s.sum(axis=0)

    def hessian(theta):
        mu, log_s = theta
        z = (y - mu) * np.exp(-log_s)
        n, e = len(y), np.exp(-log_s)
        return np.array([[-n * e**2, -2 * e * z.sum()], [-2 * e * z.sum(), -2 * (z**2).sum()]])

    return Problem(
        names=("mu", "log_s"),
        start=np.asarray(start, dtype=float),
        lower=np.asarray(lower, dtype=float),
        upper=np.asarray(upper, dtype=float),
        value_and_grad=value_and_grad,
        hessian=hessian,
        scores=lambda theta: per_obs(theta)[1],
    )


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    return np.random.default_rng(3).normal(40.0, 0.05, size=500)


@pytest.mark.parametrize("method", METHODS)
def test_interior_maximum_is_the_closed_form_mle(method, sample):
    result = maximize(normal_problem(sample, start=[0.0, 0.0]), method, 1e-6, 500)
    assert result.converged, result.message
    assert result.theta[0] == pytest.approx(sample.mean(), abs=1e-6)
    assert result.theta[1] == pytest.approx(np.log(sample.std()), abs=1e-6)
    assert [it.iteration for it in result.history] == list(range(len(result.history)))
    assert all(b.loglikelihood >= a.loglikelihood for a, b in zip(result.history, result.history[1:], strict=False))


@pytest.mark.parametrize("method", METHODS)
def test_active_upper_bound_is_held(method, sample):
    """With mu <= 39.9 the maximum over mu is at the bound, and log_s maximises the profile there."""
    problem = normal_problem(sample, start=[0.0, 0.0], upper=[39.9, np.inf])
    result = maximize(problem, method, 1e-6, 500)
    assert result.converged, result.message
    assert result.theta[0] == 39.9
    assert result.theta[1] == pytest.approx(0.5 * np.log(np.mean((sample - 39.9) ** 2)), abs=1e-6)


def test_trust_bfgs_needs_fewer_evaluations_than_lbfgs_on_badly_scaled_parameters(sample):
    """The reason it is the default: the BHHH start absorbs the 1e5 ratio of the two curvatures."""
    counts = {}
    for method in ("trust_bfgs", "bfgs"):
        problem = normal_problem(sample, start=[0.0, 0.0])
        calls: list[int] = []

        def counting(theta, f=problem.value_and_grad, calls=calls):
            calls.append(1)
            return f(theta)

        counted = Problem(**{**problem.__dict__, "value_and_grad": counting})
        assert maximize(counted, method, 1e-6, 500).converged
        counts[method] = len(calls)
    assert counts["trust_bfgs"] < counts["bfgs"], counts


def test_non_finite_start_is_an_estimation_error(sample):
    from gradfit.errors import EstimationError

    problem = normal_problem(sample, start=[np.nan, 0.0])
    for method in METHODS:
        with pytest.raises(EstimationError, match="start values give a non-finite"):
            maximize(problem, method, 1e-8, 10)
