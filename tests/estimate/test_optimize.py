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


@pytest.mark.parametrize("method", ["trust_bfgs", "newton", "box_trust_bfgs"])
def test_single_precision_likelihood_stops_at_its_rounding_level(sample, method):
    """A log-likelihood rounded to float32 cannot meet a 1e-12 tolerance. Told its rounding level, a
    trust-region optimiser stops near the optimum with a message saying so, instead of spending thousands of
    evaluations on steps it cannot judge; told nothing, it keeps trying."""
    from dataclasses import replace

    from gradfit.estimate.optimize import ROUNDING_STOP

    exact = normal_problem(sample, start=[39.0, np.log(0.2)])
    calls = {"n": 0}

    def rounded(theta):
        calls["n"] += 1
        ll, g = exact.value_and_grad(theta)
        return float(np.float32(ll)), g.astype(np.float32).astype(float)

    problem = replace(exact, value_and_grad=rounded, rounding=float(np.finfo(np.float32).eps))
    res = maximize(problem, method, 1e-12, 1000)
    assert not res.converged and res.message == ROUNDING_STOP
    assert res.theta[0] == pytest.approx(sample.mean(), abs=1e-4)
    assert np.exp(res.theta[1]) == pytest.approx(sample.std(), rel=1e-3)
    used = calls["n"]
    calls["n"] = 0
    blind = maximize(replace(problem, rounding=0.0), method, 1e-12, 1000)
    if method == "box_trust_bfgs":  # halves its radius after each rejection, down to machine epsilon
        assert used < 50 and blind.message.startswith("trust region collapsed")
    else:
        assert used < 50 and calls["n"] > 500 and blind.message == "iteration limit reached"
