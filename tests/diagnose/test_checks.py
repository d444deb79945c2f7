"""The checks of `gradfit diagnose`, each against a planted fault or an independent computation.

Planted faults: a choice component whose gradient is wrong (value unchanged, derivative scaled by 1.5), a
parameter value at which some people's utilities are log(negative), two constants in one utility, and two
almost collinear covariates. Truths: the spec's structure (which parameters the choice part uses), the data
(which people have a bad row), closed-form logit Hessians, and a numpy implementation of a small ICLV model's
quadrature.
"""

from __future__ import annotations

import copy
import re

import jax
import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import expit, logsumexp

import gradfit
from conftest import mnl_data, mnl_spec
from gradfit.diagnose import (
    CRITICAL,
    OK,
    WARNING,
    component_contributions,
    diagnose,
    gradient_check,
    identification,
    nonfinite_locator,
    simulation_noise,
)
from gradfit.diagnose.checks import FLAT, WEAK

GH = {"type": "gauss_hermite", "n": 5}


def iclv_data(n_people: int = 30, n_tasks: int = 4, seed: int = 7):
    """mnl_data plus a person-level covariate z and a person-level normal indicator of an attitude."""
    df = mnl_data(n_people, n_tasks, seed)
    rng = np.random.default_rng(seed + 100)
    z = rng.normal(size=n_people).round(4)
    att = 0.5 * z + rng.normal(size=n_people)
    ind = (1.0 + 0.8 * att + 0.6 * rng.normal(size=n_people)).round(4)
    df["z"] = np.repeat(z, n_tasks)
    df["ind"] = np.repeat(ind, n_tasks)
    return df


def iclv_spec(integration: dict) -> dict:
    """One latent variable in the choice and in one indicator: lam, a_ind, s_ind belong to measurement only."""
    spec = mnl_spec(with_latent=False)
    spec["name"] = "small_iclv"
    spec["parameters"] = {
        "asc": 0.1,
        "beta_x": 0.2,
        "c_att": 0.3,
        "g_z": 0.4,
        "lam": 0.8,
        "a_ind": 1.0,
        "s_ind": {"start": 0.7, "lower": 0.01},
    }
    spec["latent_variables"] = {"att": {"mean": "g_z * z"}}
    spec["indicators"] = {
        "ind": {
            "type": "normal",
            "loadings": {"att": "lam"},
            "intercept": "a_ind",
            "scale": "s_ind",
            "person_level": True,
        }
    }
    spec["choice"]["alternatives"]["yes"]["utility"] = "asc + beta_x * x + c_att * att"
    spec["integration"] = integration
    return spec


def names_in(formula: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", formula))


def choice_parameters(spec: dict) -> set[str]:
    """Parameters the choice part depends on, read off the spec: those in the utilities, and those in the
    structural equations of the latent variables the utilities use."""
    used = set().union(*(names_in(a["utility"]) for a in spec["choice"]["alternatives"].values()))
    for lv in used & set(spec.get("latent_variables", {})):
        used |= names_in(spec["latent_variables"][lv]["mean"])
    return used & set(spec["parameters"])


def plant_wrong_choice_gradient(model: gradfit.Model) -> None:
    """Same choice log-likelihood, gradient 1.5 times the true one; before anything is traced."""
    choice = model._built.likelihood.choice
    orig = choice.loglik

    def wrong(v, eta, arrays):
        y = orig(v, eta, arrays)
        return y + 0.5 * (y - jax.lax.stop_gradient(y))

    object.__setattr__(choice, "loglik", wrong)


@pytest.fixture(scope="module")
def iclv_frame():
    return iclv_data()


@pytest.fixture(scope="module")
def iclv_model(iclv_frame):
    return gradfit.Model(iclv_spec(GH), data=iclv_frame)


# -- 1. wrong gradient ------------------------------------------------------------------------------


def test_wrong_component_gradient_flags_exactly_the_choice_parameters(iclv_model, iclv_frame):
    spec = iclv_spec(GH)
    broken = gradfit.Model(spec, data=iclv_frame)
    plant_wrong_choice_gradient(broken)
    params = iclv_model.start_params
    assert broken.loglikelihood(params) == pytest.approx(iclv_model.loglikelihood(params), rel=1e-14)

    expected = choice_parameters(spec)
    assert expected == {"asc", "beta_x", "c_att", "g_z"}  # the fixture is what the test means it to be
    # in the utilities only (g_z also moves the indicator's likelihood through the latent variable)
    choice_only = set().union(*(names_in(a["utility"]) for a in spec["choice"]["alternatives"].values())) & set(
        spec["parameters"]
    )

    rows, findings = gradient_check(broken, params)
    assert {r["parameter"] for r in rows if r["flagged"]} == expected
    (finding,) = findings
    assert finding.severity == CRITICAL and set(finding.details["parameters"]) == expected

    truth = iclv_model.gradient(params)  # the correct gradient
    for r in rows:
        # finite differences see the unchanged values, so they estimate the true gradient
        assert r["finite_difference"] == pytest.approx(truth[r["parameter"]], rel=1e-6, abs=1e-7)
        if r["parameter"] not in expected:
            assert r["autodiff"] == pytest.approx(truth[r["parameter"]], rel=1e-12)
        elif r["parameter"] in choice_only:  # the whole gradient is the choice part's, so it is scaled
            assert r["autodiff"] == pytest.approx(1.5 * truth[r["parameter"]], rel=1e-10)

    d = diagnose(broken)
    assert d.severity == CRITICAL and d.exit_code == 4
    (grad_finding,) = [f for f in d.findings if f.check == "gradient"]
    assert grad_finding.severity == CRITICAL and set(grad_finding.details["parameters"]) == expected
    # nothing else is wrong with this model
    assert all(f.severity == OK for f in d.findings if f.check != "gradient")


def test_correct_model_passes_every_check(iclv_model):
    d = diagnose(iclv_model)
    assert [f.check for f in d.findings] == ["nonfinite", "gradient", "identification", "noise", "quadrature"]
    assert all(f.severity == OK for f in d.findings), d.findings
    assert d.severity == OK and d.exit_code == 0 and d.at == "start"
    assert not any(r["flagged"] for r in d.gradient)
    assert {r["parameter"] for r in d.gradient} == set(iclv_model.parameter_names)
    assert d.loglikelihood == pytest.approx(iclv_model.loglikelihood(), rel=1e-14)


# -- 2. NaN-producing parameter value ---------------------------------------------------------------


@pytest.fixture(scope="module")
def log_frame():
    return mnl_data(n_people=20)


@pytest.fixture(scope="module")
def log_model(log_frame):
    spec = mnl_spec()
    spec["parameters"].update({"gamma": 0.2, "delta": 5.0})
    spec["choice"]["alternatives"]["yes"]["utility"] = "asc + beta_x * x + gamma * log(delta + x)"
    return gradfit.Model(spec, data=log_frame)


def test_nonfinite_locator_finds_the_people_and_the_parameter(log_model, log_frame):
    x = log_frame["x"]
    assert x.min() > -5 and not (x == -0.5).any()  # finite at the start; no row exactly on log(0)
    assert [f.severity for f in nonfinite_locator(log_model, log_model.start_params)] == [OK]

    params = dict(log_model.start_params, delta=0.5)
    bad = sorted(log_frame.loc[x < -0.5, "id"].unique())  # people with some row where delta + x < 0
    assert 5 < len(bad) < log_frame["id"].nunique()

    (finding,) = nonfinite_locator(log_model, params)
    assert finding.severity == CRITICAL and finding.details["component"] == "choice"
    assert "delta" in finding.details["parameters"]
    assert f"non-finite for {len(bad)} of {log_frame['id'].nunique()} people" in finding.message
    shown = finding.details["people"]
    assert len(shown) == 5 and len({p["person"] for p in shown}) == 5
    for p in shown:
        assert p["person"] in bad
        rows = np.flatnonzero(log_frame["id"].to_numpy() == p["person"]) + 1  # 1-based file rows
        assert p["rows"] == sorted(rows)

    d = diagnose(log_model, params)
    assert d.severity == CRITICAL and [f.check for f in d.findings] == ["nonfinite"]
    assert not np.isfinite(d.loglikelihood) and d.gradient == []


# -- 3. unidentified parameter ----------------------------------------------------------------------


def two_constants_spec() -> dict:
    spec = mnl_spec()
    spec["parameters"]["asc2"] = 0.0
    spec["choice"]["alternatives"]["yes"]["utility"] = "asc + asc2 + beta_x * x"
    return spec


def test_two_constants_are_not_identified(mnl_frame):
    model = gradfit.Model(two_constants_spec(), data=mnl_frame)
    eigen, findings = identification(model, model.start_params, at_estimates=False)
    (finding,) = findings
    assert finding.severity == CRITICAL
    assert set(finding.details["parameters"]) == {"asc", "asc2"}
    assert abs(finding.details["eigenvalue"]) <= FLAT * max(np.abs(eigen["eigenvalues"]))
    assert eigen["condition_number"] == float("inf")
    d = diagnose(model)
    assert d.severity == CRITICAL and d.exit_code == 4
    # only identification is wrong: the gradient is right and everything is finite
    assert {f.check for f in d.findings if f.severity != OK} == {"identification"}


# -- 4. weak identification -------------------------------------------------------------------------


def weak_frame():
    """x2 = x + 3e-5 * z, z independent of x: condition number ~5e9, two decades inside (WEAK, 1/FLAT)."""
    df = mnl_data()
    df["x2"] = df["x"] + 3e-5 * np.random.default_rng(12345).normal(size=len(df))
    return df


def weak_spec() -> dict:
    spec = mnl_spec()
    spec["parameters"]["beta_x2"] = 0.0
    spec["choice"]["alternatives"]["yes"]["utility"] = "asc + beta_x * x + beta_x2 * x2"
    return spec


def test_nearly_collinear_covariates_are_weakly_identified():
    df = weak_frame()
    model = gradfit.Model(weak_spec(), data=df)
    # At the start (all coefficients 0) every probability is 1/2: -H = X'X / 4.
    X = np.column_stack([np.ones(len(df)), df["x"], df["x2"]])
    lam = np.linalg.eigvalsh(X.T @ X / 4)
    cond = lam.max() / lam.min()
    assert 10 * WEAK < cond < 0.01 / FLAT  # the planted fault is well inside the warning window

    eigen, findings = identification(model, model.start_params, at_estimates=False)
    assert eigen["condition_number"] == pytest.approx(cond, rel=1e-3)
    np.testing.assert_allclose(sorted(eigen["eigenvalues"]), lam, rtol=1e-3, atol=1e-12 * lam.max())
    (finding,) = findings
    assert finding.severity == WARNING and set(finding.details["parameters"]) == {"beta_x", "beta_x2"}
    d = diagnose(model)
    assert d.severity == WARNING and d.exit_code == 3


# -- 5. component contributions ---------------------------------------------------------------------


def test_contributions_add_up_on_the_rich_model(rich_model):
    params = rich_model.start_params
    rows = component_contributions(rich_model, params)
    ll = rich_model.loglikelihood(params)
    assert sum(r["posterior_mean"] for r in rows) == pytest.approx(ll, rel=1e-9)
    parts = {k: v for k, v in rich_model.components(params).items() if k != "structural"}
    assert [r["component"] for r in rows] == [*parts, "integration"]
    r_draws = parts["choice"].shape[1]
    for r in rows[:-1]:  # alone: log-mean-exp over the (equally weighted) Sobol draws, summed over people
        alone = (logsumexp(parts[r["component"]], axis=1) - np.log(r_draws)).sum()
        assert r["marginal"] == pytest.approx(alone, rel=1e-12)
    assert rows[-1]["posterior_mean"] <= 0  # minus a KL divergence


def test_contributions_with_quadrature_weights_match_numpy(iclv_model, iclv_frame):
    """Gauss-Hermite nodes are not equally weighted: the posterior and the marginals must use the weights.
    Truth: the small ICLV model integrated by a numpy quadrature of its own."""
    p = iclv_model.start_params
    people = iclv_frame.groupby("id", sort=False)
    z, ind = people["z"].first().to_numpy(), people["ind"].first().to_numpy()
    nodes, w = hermegauss(GH["n"])
    log_w = np.log(w / w.sum())
    att = p["g_z"] * z[:, None] + nodes[None, :]  # (people, nodes)
    choice = np.zeros_like(att)
    for k, (_, rows) in enumerate(people):
        v = p["asc"] + p["beta_x"] * rows["x"].to_numpy()[:, None] + p["c_att"] * att[k][None, :]
        prob_yes = expit(v)
        choice[k] = np.log(np.where(rows["choice"].to_numpy()[:, None] == 1, prob_yes, 1 - prob_yes)).sum(axis=0)
    resid = (ind[:, None] - p["a_ind"] - p["lam"] * att) / p["s_ind"]
    measurement = -0.5 * resid**2 - np.log(p["s_ind"]) - 0.5 * np.log(2 * np.pi)
    joint = choice + measurement
    ll = logsumexp(joint + log_w, axis=1).sum()
    assert iclv_model.loglikelihood(p) == pytest.approx(ll, rel=1e-12)  # the numpy model is the same model

    post = np.exp(joint + log_w - logsumexp(joint + log_w, axis=1, keepdims=True))
    expected = {
        "choice": ((post * choice).sum(), logsumexp(choice + log_w, axis=1).sum()),
        "measurement:normal_person": ((post * measurement).sum(), logsumexp(measurement + log_w, axis=1).sum()),
    }
    rows = {r["component"]: r for r in component_contributions(iclv_model, p)}
    assert set(rows) == {*expected, "integration"}
    for name, (mean, alone) in expected.items():
        assert rows[name]["posterior_mean"] == pytest.approx(mean, rel=1e-10)
        assert rows[name]["marginal"] == pytest.approx(alone, rel=1e-10)
    assert sum(r["posterior_mean"] for r in rows.values()) == pytest.approx(ll, rel=1e-9)


# -- 6. simulation noise ----------------------------------------------------------------------------


def test_simulation_noise_uses_other_draws(iclv_frame):
    spec = iclv_spec({"type": "halton", "n": 16, "seed": 3})
    model = gradfit.Model(spec, data=iclv_frame)
    p = model.start_params
    noise, (finding,) = simulation_noise(model, p, None, at_estimates=False)
    assert finding.severity == OK and noise["draw_type"] == "scrambled_halton" and noise["draws"] == 16
    lls = np.array(noise["loglikelihoods"])
    assert noise["sd"] > 0 and noise["sd"] == pytest.approx(lls.std(ddof=1), rel=1e-12)
    assert 3 not in noise["seeds"] and len(set(noise["seeds"])) == len(lls) == len(set(lls.tolist()))
    own = model.loglikelihood(p)
    assert np.all(lls != own)
    # plain Halton draws with the model's own seed, through the same path, give the model's own value
    assert model.value_and_grad_with_draws(3, p)[0] == pytest.approx(own, rel=1e-13)
    # each draw set is the one a model declared with it would use
    other = copy.deepcopy(spec)
    other["integration"] = {"type": "scrambled_halton", "n": 16, "seed": noise["seeds"][0]}
    assert gradfit.Model(other, data=iclv_frame).loglikelihood(p) == pytest.approx(lls[0], rel=1e-13)


def test_quadrature_has_no_simulation_noise(iclv_model):
    noise, (finding,) = simulation_noise(iclv_model, iclv_model.start_params, None, at_estimates=False)
    assert finding.severity == OK and "no simulation noise" in finding.message
    assert "sd" not in noise


def test_quadrature_check_warns_when_more_points_change_the_integral(rich_frame):
    """Two Gauss-Hermite points per dimension cannot integrate the rich model; 4 points move the log-likelihood,
    and the reported figures are the two models' own log-likelihoods."""
    from conftest import rich_spec
    from gradfit.diagnose import WARNING, quadrature_check

    coarse = gradfit.Model(rich_spec({"type": "gauss_hermite", "n": 2}), data=rich_frame)
    info, (finding,) = quadrature_check(coarse, coarse.start_params)
    finer = gradfit.Model(rich_spec({"type": "gauss_hermite", "n": 4}), data=rich_frame)
    assert info["loglikelihood"] == pytest.approx(coarse.loglikelihood(), rel=1e-12)
    assert info["finer"] == pytest.approx(finer.loglikelihood(), rel=1e-12)
    assert abs(info["finer"] - info["loglikelihood"]) > 0.1
    assert finding.severity == WARNING and "not converged" in finding.message
    per_person = np.abs(finer.loglikelihood_per_person() - coarse.loglikelihood_per_person())
    assert str(info["people"][0]["person"]) == str(coarse.person_ids[int(np.argmax(per_person))])


def test_precision_check_compares_with_float64(iclv_frame, iclv_model, monkeypatch):
    """A mixed-precision model is compared with the same model in float64 (whose figures the report must
    match); a float64 model skips the check; a larger error than the tolerance is a warning."""
    from gradfit.diagnose import WARNING, checks, precision_check

    assert precision_check(iclv_model, iclv_model.start_params) == ({}, [])
    spec = iclv_spec(GH)
    spec["estimation"] = {"precision": "mixed"}
    mixed = gradfit.Model(spec, data=iclv_frame)
    info, (finding,) = precision_check(mixed, mixed.start_params)
    assert info["float64"] == pytest.approx(iclv_model.loglikelihood(), rel=1e-13)
    assert info["loglikelihood"] == pytest.approx(mixed.loglikelihood(), rel=1e-13)
    assert info["loglikelihood"] != info["float64"] and 0 < info["gradient_max_rel_error"] < 1e-3
    assert finding.severity == OK and "mixed against float64" in finding.message
    monkeypatch.setattr(checks, "PRECISION_LL_TOLERANCE", 0.0)
    _, (finding,) = precision_check(mixed, mixed.start_params)
    assert finding.severity == WARNING and "use estimation.precision: float64" in finding.message
