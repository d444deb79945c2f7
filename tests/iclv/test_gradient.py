"""Derivatives of the simulated log-likelihood: autodiff gradient, scores and Hessian.

Truths: central finite differences of `Model.loglikelihood` (and of `Model.gradient` for the Hessian), and the
importance-weighting identity d/dθ log Σ_r w_r L_r = Σ_r (w_r L_r / Σ_r' w_r' L_r') d/dθ log L_r, evaluated
explicitly from per-draw log-likelihoods and their Jacobian. All in float64 on the rich model of conftest.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import softmax

import gradfit
from conftest import perturbed, rich_spec


def vector(model, params: dict[str, float]) -> np.ndarray:
    return np.array([params[n] for n in model.parameter_names])


def as_dict(model, theta: np.ndarray) -> dict[str, float]:
    return dict(zip(model.parameter_names, map(float, theta), strict=True))


def step(theta_i: float) -> float:
    return 1e-5 * max(1.0, abs(theta_i))


def fd_gradient(model, theta: np.ndarray) -> np.ndarray:
    out = np.empty_like(theta)
    for i in range(theta.size):
        h = step(theta[i])
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        out[i] = (model.loglikelihood(as_dict(model, up)) - model.loglikelihood(as_dict(model, down))) / (2 * h)
    return out


@pytest.mark.parametrize("seed", [101, 202, 303])
def test_gradient_matches_central_differences(rich_model, seed):
    """Max over parameters of |g_fd - g| / max(|g|, 1e-2) <= 1e-6.

    Central differences with h = 1e-5 max(1, |θ|) have truncation error ~h² |f'''| / 6 and rounding error
    ~eps |LL| / h ≈ 1e-8 here (LL ≈ -500); the 1e-2 floor keeps near-zero gradient components from turning
    that absolute noise into a large relative error. Observed errors are ~1e-8, so a wrong derivative of any
    single component (even a factor 1 + 1e-5 off) fails.
    """
    params = perturbed(rich_model, rich_spec(), seed=seed, size=0.3)
    theta = vector(rich_model, params)
    g = vector(rich_model, rich_model.gradient(params))
    fd = fd_gradient(rich_model, theta)
    rel = np.abs(fd - g) / np.maximum(np.abs(g), 1e-2)
    worst = int(np.argmax(rel))
    assert rel[worst] <= 1e-6, f"{rich_model.parameter_names[worst]}: autodiff {g[worst]}, FD {fd[worst]}"


def test_gradient_is_the_importance_weighted_average_of_per_draw_gradients(rich_model):
    """jax.grad of log-mean-exp = Σ_r w_nr ∇ log L_nr with w_nr ∝ L_nr / R (the posterior weights of the draws).

    Checked per person against `scores` and summed against `gradient`.
    """
    params = perturbed(rich_model, rich_spec(), seed=7, size=0.3)
    theta = jnp.asarray(vector(rich_model, params))
    lik, arrays = rich_model._built.likelihood, rich_model._built.arrays  # one device, unpadded
    log_l = np.asarray(jax.jit(lik.per_draw)(theta, arrays))  # (N, R)
    jac = np.asarray(jax.jit(jax.jacrev(lik.per_draw))(theta, arrays))  # (N, R, P)
    n_draws = rich_spec()["integration"]["n"]
    assert log_l.shape == (rich_model.n_individuals, n_draws)
    weights = softmax(log_l - np.log(n_draws), axis=1)  # equal draw weights 1/R
    expected_scores = np.einsum("nr,nrp->np", weights, jac)

    scores = rich_model.scores(params)
    assert scores.shape == (rich_model.n_individuals, len(rich_model.parameter_names))
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-9, atol=1e-10 * np.abs(expected_scores).max())
    g = vector(rich_model, rich_model.gradient(params))
    np.testing.assert_allclose(g, expected_scores.sum(axis=0), rtol=1e-9, atol=1e-10 * np.abs(g).max())
    # and the unweighted average is not the same thing (the weights matter)
    assert not np.allclose(g, jac.mean(axis=1).sum(axis=0), rtol=1e-3)


@pytest.mark.parametrize("seed", [11, 12])
def test_scores_sum_to_the_gradient(rich_model, seed):
    params = perturbed(rich_model, rich_spec(), seed=seed)
    scores = rich_model.scores(params)
    g = vector(rich_model, rich_model.gradient(params))
    np.testing.assert_allclose(scores.sum(axis=0), g, rtol=1e-10, atol=1e-10 * np.abs(g).max())
    # per-person log-likelihoods add up to the total, too
    total = rich_model.loglikelihood(params)
    assert rich_model.loglikelihood_per_person(params).sum() == pytest.approx(total, rel=1e-12)


def test_hessian_is_symmetric_and_matches_differences_of_the_gradient(rich_model):
    """|H - H_fd| <= 1e-6 max(|H|, 1) elementwise, H_fd[:, j] = (g(θ + h e_j) - g(θ - h e_j)) / 2h."""
    params = perturbed(rich_model, rich_spec(), seed=99, size=0.3)
    theta = vector(rich_model, params)
    hess = rich_model.hessian(params)
    assert list(hess.index) == list(hess.columns) == list(rich_model.parameter_names)
    H = hess.to_numpy()
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-10 * np.abs(H).max())
    fd = np.empty_like(H)
    for j in range(theta.size):
        h = step(theta[j])
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        g_up = vector(rich_model, rich_model.gradient(as_dict(rich_model, up)))
        g_down = vector(rich_model, rich_model.gradient(as_dict(rich_model, down)))
        fd[:, j] = (g_up - g_down) / (2 * h)
    err = np.abs(H - fd) / np.maximum(np.abs(H), 1.0)
    i, j = np.unravel_index(np.argmax(err), err.shape)
    names = rich_model.parameter_names
    assert err[i, j] <= 1e-6, f"H[{names[i]}, {names[j]}] = {H[i, j]}, FD {fd[i, j]}"


LOADINGS = ("lam1", "lam2", "lam2b", "lam3", "lam4")  # free ones (lam5 is fixed)
UTILITY = ("b_time", "b_cost", "asc_bus", "asc_rail", "b_artemis", "c_bus_LV2", "c_rail_LV1", "d_bus_age")
SCALES = ("s2", "sig3", "s_LV2")
HUGE_THRESHOLDS = {"d1": 1e3, "d2": 1e3, "t1": -1e3, "t2": 1e3, "t3": 1e3, "c1": -1e3}

EXTREMES = {
    "loadings +50": dict.fromkeys(LOADINGS, 50.0),
    "loadings -50": dict.fromkeys(LOADINGS, -50.0),
    "thresholds huge": HUGE_THRESHOLDS,
    "thresholds 1e5": {k: 100 * v for k, v in HUGE_THRESHOLDS.items()},
    "thresholds all tiny gaps": {"d1": 1e-9, "d2": 1e-9, "t2": 1e-9, "t3": 1e-9},
    "scales 1e-3": dict.fromkeys(SCALES, 1e-3),
    "scales 1e3": dict.fromkeys(SCALES, 1e3),
    "utilities +100": dict.fromkeys(UTILITY, 100.0),
    "utilities -100": dict.fromkeys(UTILITY, -100.0),
    "structural large": {"b21": 50.0, "rho12": -50.0, "g1_age": 100.0, "g2_inc": -100.0},
    "loadings 50, scales 1e-3": {**dict.fromkeys(LOADINGS, 50.0), **dict.fromkeys(SCALES, 1e-3)},
    "loadings -50, thresholds huge, utilities 100": {
        **dict.fromkeys(LOADINGS, -50.0),
        **HUGE_THRESHOLDS,
        **dict.fromkeys(UTILITY, 100.0),
    },
}

BEYOND_BIG = pytest.param(
    {**dict.fromkeys(LOADINGS, 50.0), **dict.fromkeys(SCALES, 1e-3), **HUGE_THRESHOLDS},
    id="loadings 50, scales 1e-3, thresholds huge",
)


@pytest.mark.parametrize("update", [*[pytest.param(v, id=k) for k, v in EXTREMES.items()], BEYOND_BIG])
def test_loglikelihood_and_gradient_finite_at_extreme_values(rich_model, update):
    """Every indicator type (ordered probit/logit, normal, binary logit) and the choice model stay finite."""
    params = {**rich_model.start_params, **update}
    ll = rich_model.loglikelihood(params)
    g = rich_model.gradient(params)
    assert np.isfinite(ll)
    bad = [n for n, v in g.items() if not np.isfinite(v)]
    assert not bad, f"non-finite gradient for {bad}"


def test_float32_precision_agrees_with_float64(rich_frame):
    """precision: float32 computes the same model in single precision: LL and gradient close to float64."""
    spec32 = rich_spec()
    spec32["estimation"] = {"precision": "float32"}
    m64, m32 = gradfit.Model(rich_spec(), data=rich_frame), gradfit.Model(spec32, data=rich_frame)
    ll64, ll32 = m64.loglikelihood(), m32.loglikelihood()
    assert np.isfinite(ll32) and abs(ll32 - ll64) <= 1e-4 * abs(ll64)
    g64, g32 = m64.gradient(), m32.gradient()
    scale = max(abs(v) for v in g64.values())
    assert all(abs(g32[k] - g64[k]) <= 1e-3 * scale for k in g64)
