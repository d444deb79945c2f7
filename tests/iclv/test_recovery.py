"""Parameter recovery on synthetic data with known truth, and agreement of the two optimisers.

The truth is the data-generating process of `gradfit.iclv.simulate.seed_model` (its `truth`), independent of
the estimator: if the likelihood, its derivatives or the covariance formulas were wrong, the true values
would fall outside the confidence intervals far more (or far less) often than 5% of the time.
"""

from __future__ import annotations

import numpy as np
import pytest

import gradfit
from gradfit.iclv.simulate import seed_model

# Three replications with identical shapes (the persistent compilation cache of conftest then compiles once):
# 250 people x 8 choice situations, one latent variable with 3 five-point indicators, 37 free parameters each.
SEEDS = (1, 2, 3)
SIZE = {"n_people": 250, "n_tasks": 8, "n_latent": 1, "per_latent": 3, "n_draws": 50}


@pytest.fixture(scope="module")
def replications():
    out = []
    for seed in SEEDS:
        sim = seed_model(seed=seed, **SIZE)
        model = gradfit.Model(sim.spec, data=sim.data)
        out.append((sim, model, model.fit(optimizer="bfgs")))
    return out


def test_fits_converge(replications):
    for _, _, res in replications:
        assert res.converged, res.message
        assert np.all(np.isfinite(res.estimates["robust_std_err"]))


def test_true_values_fall_inside_95_percent_robust_intervals(replications):
    """Coverage of the 95% robust (sandwich) intervals over all 3 x 37 = 111 parameters is at least 85%.

    Binomial reasoning: were the 111 intervals independent with exact 95% coverage, the number of misses would
    be Binomial(111, 0.05): mean 5.6, sd 2.3; P(misses >= 17, i.e. coverage < 85%) = 4e-5. Correlation between
    the estimates of one replication widens that distribution, and finite-sample and simulation bias (50 Halton
    draws) shift it a little; the 85% floor leaves room for both. Standard errors half their right size would
    give ~67% coverage and fail.
    """
    hits, total, z2 = 0, 0, []
    for sim, _, res in replications:
        est = res.estimates
        assert set(est.index) == set(sim.truth)
        truth = np.array([sim.truth[name] for name in est.index])
        z = (est["value"].to_numpy() - truth) / est["robust_std_err"].to_numpy()
        hits += int(np.sum(np.abs(z) <= 1.959964))
        total += z.size
        z2.extend(z**2)
    assert total == 111
    assert hits / total >= 0.85, f"coverage {hits}/{total}"
    # The other direction: standard errors much too large would also give high coverage. E[z^2] = 1; its
    # average over 111 values has sd ~0.13 under independence, so 0.4 is far below any sampling accident
    # while SEs twice too large (E[z^2] = 0.25) fail.
    assert 0.4 <= np.mean(z2) <= 2.5, f"mean z^2 = {np.mean(z2)}"


def test_hessian_and_robust_standard_errors_agree(replications):
    """Information-matrix equality: in a correctly specified model the Hessian-based and sandwich standard
    errors estimate the same thing; their median ratio is near 1."""
    for _, _, res in replications:
        est = res.estimates
        ratio = est["robust_std_err"] / est["std_err"]
        assert 0.75 <= ratio.median() <= 1.33
        assert 0.6 <= (est["bhhh_std_err"] / est["std_err"]).median() <= 1.6


def test_newton_and_bfgs_reach_the_same_maximum(replications):
    """Trust-region Newton from the same start as BFGS (first replication): same maximum."""
    _, model, bfgs = replications[0]
    newton = model.fit(optimizer="newton")
    assert bfgs.converged and newton.converged
    assert bfgs.optimizer == "bfgs" and newton.optimizer == "newton"
    assert newton.loglikelihood == pytest.approx(bfgs.loglikelihood, abs=1e-4)
    se = bfgs.estimates["std_err"].to_numpy()
    diff = np.abs(newton.theta - bfgs.theta)
    assert np.all(diff <= 0.01 * se), dict(zip(bfgs.names, diff / se, strict=True))
    # a maximum: better than the start, negative definite Hessian
    assert bfgs.loglikelihood > bfgs.initial_loglikelihood + 100
    assert bfgs.cov.min_eigenvalue > 0 and newton.cov.min_eigenvalue > 0
