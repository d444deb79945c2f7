"""The ICLV simulated log-likelihood against an independent plain numpy/scipy implementation.

The reference below is written from the model's definition (docs of the spec schema), not from gradfit's
code: explicit loops over people, draws and rows; scipy's normal and logistic distributions; the derived
columns and the filter applied with pandas. It shares with gradfit only the integration nodes, which come
from `normal_draws` (tested separately) with the spec's settings, and Gauss-Hermite nodes from numpy's
`hermegauss`. People are numbered in order of first appearance in the filtered data.
"""

from __future__ import annotations

import copy

import jax
import numpy as np
import pandas as pd
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import expit, logsumexp, ndtr

import gradfit
from conftest import perturbed, rich_spec
from gradfit.core.draws import normal_draws

RTOL = 1e-10


# ------------------------------------------------------------------------------------------------------
# Reference implementation


def prepare(raw: pd.DataFrame) -> pd.DataFrame:
    """Derived columns and filter of the rich spec, with pandas."""
    df = raw.copy()
    df["inc"] = df["income"] / 10000 - 5
    df["time_bus"] = df["time_bus_min"] / 60
    return df[(df["task"] <= 4) & (df["keep"] == 1)].reset_index(drop=True)


def observed(value: float, missing: tuple[float, ...]) -> bool:
    return not np.isnan(value) and value not in missing


def person_value(values, missing) -> float | None:
    """The one observed value of a person-level indicator (None when every row is missing)."""
    seen = {v for v in values if observed(v, missing)}
    assert len(seen) <= 1, "test data must be constant within a person"
    return seen.pop() if seen else None


def cdf(x, link: str):
    return ndtr(x) if link == "probit" else expit(x)


def sf(x, link: str):
    return ndtr(-x) if link == "probit" else expit(-x)


def log_ordered_prob(category: int, mu, scale: float, cuts: list[float], link: str):
    """log P(y = category) (0-based) for an ordered model with thresholds `cuts`; mu is (draws,)."""
    lo = np.full_like(mu, -np.inf) if category == 0 else (cuts[category - 1] - mu) / scale
    hi = np.full_like(mu, np.inf) if category == len(cuts) else (cuts[category] - mu) / scale
    # In the upper tail use survival functions, so that the difference is not of two numbers near 1.
    prob = np.where(lo > 0, sf(lo, link) - sf(hi, link), cdf(hi, link) - cdf(lo, link))
    return np.log(prob)


def log_normal_pdf(y: float, mu, sd: float):
    return -0.5 * ((y - mu) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)


def symmetric_cuts(p: dict, n_cuts: int) -> list[float]:
    """±(d1, d1 + d2) with a 0 in the middle when the number of cuts is odd."""
    half = [p["d1"], p["d1"] + p["d2"]]
    middle = [0.0] if n_cuts % 2 else []
    return [-h for h in reversed(half)] + middle + half


def increment_cuts(p: dict) -> list[float]:
    return [p["t1"], p["t1"] + p["t2"], p["t1"] + p["t2"] + p["t3"]]


def reference_per_draw(raw: pd.DataFrame, p: dict, nodes: np.ndarray, two_lv: bool) -> np.ndarray:
    """(people, draws) log of the joint probability of each person's data given each draw.

    `nodes` is (people or 1, draws, latent variables) of standard normal values. Explicit loops over people
    and rows; each line is vectorised over the draws of one person.
    two_lv=True: the rich model of conftest; False: its one-latent-variable variant (`one_lv_spec`).
    """
    df = prepare(raw)
    people = pd.unique(df["pid"])
    out = np.zeros((len(people), nodes.shape[1]))
    for n, pid in enumerate(people):
        rows = df[df["pid"] == pid].to_dict("records")
        z = nodes[min(n, nodes.shape[0] - 1)]  # (draws, latent variables)
        age, inc = rows[0]["age"], rows[0]["inc"]
        lv1 = p["g1_age"] * age + p["s_LV1"] * z[:, 0]
        lv2 = 0.0 * lv1
        if two_lv:
            lv2 = p["g2_inc"] * inc + p["b21"] * lv1 + p["s_LV2"] * z[:, 1] + p["rho12"] * z[:, 0]
        total = np.zeros(nodes.shape[1])
        # person-level indicators, once per person
        q1 = person_value([r["q1"] for r in rows], (-1.0, 99.0))
        q3 = person_value([r["q3"] for r in rows], (-99.0,))
        if q1 is not None:
            total += log_ordered_prob(int(q1) - 1, p["lam1"] * lv1, 1.0, symmetric_cuts(p, 5), "probit")
        if two_lv and q3 is not None:
            total += log_normal_pdf(q3, p["a3"] + p["lam3"] * lv2, p["sig3"])
        for row in rows:
            # row-level indicators
            if observed(row["q2"], (0.0,)):
                mu2 = p["a2"] + p["lam2b"] * lv1 + (p["lam2"] * lv2 if two_lv else 0.0)
                total += log_ordered_prob(int(row["q2"]) - 1, mu2, p["s2"], increment_cuts(p), "logit")
            if observed(row["q4"], (9.0,)):
                v4 = p["a4"] + p["lam4"] * lv1
                total += np.log(expit(v4) if row["q4"] == 2 else expit(-v4))
            if two_lv and observed(row["q5_raw"], ()):
                total += log_ordered_prob(int(row["q5_raw"]) - 1, p["lam5"] * lv2, 1.0, [p["c1"], 1.0], "probit")
            # choice: multinomial logit over the available alternatives
            v_car = p["b_time"] * row["time_car"] + p["b_cost"] * row["cost_car"]
            v_bus = (
                p["asc_bus"]
                + p["b_time"] * row["time_bus"]
                + p["b_cost"] * row["cost_bus"]
                + p["d_bus_age"] * row["age"]
                + (p["c_bus_LV2"] * lv2 if two_lv else 0.0)
            )
            v_rail = (
                p["asc_rail"]
                + p["b_time"] * row["time_rail"]
                + p["b_cost"] * row["cost_rail"]
                + p["b_artemis"] * float(row["brand"] == "Artemis")
                + p["c_rail_LV1"] * lv1
            )
            utilities = {1: v_car, 2: v_bus}
            if row["rail_av"] == 1:
                utilities[3] = v_rail
            total += utilities[int(row["choice"])] - logsumexp(np.broadcast_arrays(*utilities.values()), axis=0)
        out[n] = total
    return out


def reference_per_person(raw, p, nodes, log_weights, two_lv) -> np.ndarray:
    return logsumexp(reference_per_draw(raw, p, nodes, two_lv) + log_weights, axis=1)


# ------------------------------------------------------------------------------------------------------
# Models and parameter points


def one_lv_spec() -> dict:
    """The rich model cut down to LV1 only, integrated by 8-point Gauss-Hermite quadrature."""
    spec = copy.deepcopy(rich_spec({"type": "gauss_hermite", "n": 8}))
    del spec["latent_variables"]["LV2"]
    spec["correlations"] = []
    for name in ("q3", "q5"):
        del spec["indicators"][name]
    del spec["thresholds"]["cut3"]
    spec["indicators"]["q2"]["loadings"] = {"LV1": "lam2b"}
    bus = spec["choice"]["alternatives"]["bus"]
    bus["utility"] = bus["utility"].replace("+ c_bus_LV2 * LV2 ", "")
    for name in ("g2_inc", "b21", "s_LV2", "rho12", "lam2", "lam3", "a3", "sig3", "lam5", "c1", "c_bus_LV2"):
        del spec["parameters"][name]
    spec["parameters"]["s_LV1"] = {"start": 1.3, "lower": 0.01}  # free, so the scale's role is checked
    spec["parameters"]["lam1"] = {"start": 1.2, "fixed": True}  # and a fixed loading identifies it instead
    return spec


def all_params(spec: dict, free: dict[str, float]) -> dict[str, float]:
    """Free values plus the fixed parameters' start values."""
    out = dict(free)
    for name, ps in spec["parameters"].items():
        if name not in out:
            out[name] = ps["start"] if isinstance(ps, dict) else ps
    return out


def rich_nodes(spec: dict, n_people: int) -> tuple[np.ndarray, np.ndarray]:
    integ = spec["integration"]
    z = normal_draws(integ["type"], n_people, integ["n"], 2, integ["seed"], integ["antithetic"])
    return z, np.full(integ["n"], -np.log(integ["n"]))


@pytest.fixture(scope="module")
def gh_model(rich_frame) -> gradfit.Model:
    return gradfit.Model(one_lv_spec(), data=rich_frame)


# ------------------------------------------------------------------------------------------------------
# Tests


def test_reference_data_cover_the_features(rich_frame):
    """Guard against a test-data change that silently stops exercising a feature."""
    df = prepare(rich_frame)
    assert (df["rail_av"] == 0).any() and (df["brand"] == "Artemis").any() and (df["brand"] != "Artemis").any()
    assert df["q1"].isna().any() and (df["q1"] == 99).any() and (df["q1"] == -1).any()
    assert (df["q2"] == 0).any() and df["q2"].isna().any() and (df["q4"] == 9).any() and (df["q3"] == -99).any()
    assert len(prepare(rich_frame)) < len(rich_frame)  # the filter drops rows
    assert "P05" in set(rich_frame["pid"]) and "P05" not in set(df["pid"])  # and a whole person
    people = pd.unique(df["pid"])
    assert list(people) != sorted(people)  # first-appearance order differs from sorted order
    assert df.groupby("pid").size().nunique() > 1  # unbalanced panel


@pytest.mark.parametrize("seed", [None, 1, 2])
def test_simulated_loglikelihood_matches_numpy(rich_model, rich_frame, seed):
    """At the start values (seed None) and at two random points around them."""
    spec = rich_spec()
    free = rich_model.start_params if seed is None else perturbed(rich_model, spec, seed=seed)
    p = all_params(spec, free)
    z, log_w = rich_nodes(spec, rich_model.n_individuals)
    expected = reference_per_person(rich_frame, p, z, log_w, two_lv=True)
    got = rich_model.loglikelihood_per_person(free)
    assert got.shape == expected.shape == (31,)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=0)
    assert rich_model.loglikelihood(free) == pytest.approx(expected.sum(), rel=RTOL, abs=0)


def test_per_draw_loglikelihood_matches_numpy(rich_model, rich_frame):
    """Finer-grained: the (people, draws) joint log-probabilities themselves, not only their average."""
    spec = rich_spec()
    free = perturbed(rich_model, spec, seed=5)
    z, _ = rich_nodes(spec, rich_model.n_individuals)
    expected = reference_per_draw(rich_frame, all_params(spec, free), z, two_lv=True)
    theta = np.array([free[n] for n in rich_model.parameter_names])
    per_draw = jax.jit(rich_model._built.likelihood.per_draw)
    got = np.asarray(per_draw(theta, rich_model._built.arrays))
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=1e-12)


def test_draws_are_not_interchangeable(rich_model, rich_frame):
    """Sanity check of the comparison's power: other draws (another seed) give a different likelihood."""
    spec = rich_spec()
    z, log_w = rich_nodes(spec, rich_model.n_individuals)
    p = all_params(spec, rich_model.start_params)
    ll = reference_per_person(rich_frame, p, z, log_w, two_lv=True).sum()
    shuffled = reference_per_person(rich_frame, p, z[::-1], log_w, two_lv=True).sum()
    assert abs(ll - shuffled) > 1e-6
    assert rich_model.loglikelihood() == pytest.approx(ll, rel=RTOL, abs=0)


@pytest.mark.parametrize("point", ["start", "random"])
def test_gauss_hermite_matches_numpy(gh_model, rich_frame, point):
    spec = one_lv_spec()
    free = gh_model.start_params if point == "start" else perturbed(gh_model, spec, seed=17)
    x, w = hermegauss(8)
    nodes = x[None, :, None]
    log_w = np.log(w / w.sum())
    expected = reference_per_person(rich_frame, all_params(spec, free), nodes, log_w, two_lv=False)
    np.testing.assert_allclose(gh_model.loglikelihood_per_person(free), expected, rtol=RTOL, atol=0)
    assert gh_model.loglikelihood(free) == pytest.approx(expected.sum(), rel=RTOL, abs=0)


@pytest.mark.parametrize(
    "integration",
    [
        {"type": kind, "n": 16, "seed": 4, "antithetic": anti}
        for kind in ("pseudo", "halton", "scrambled_halton", "sobol", "mlhs")
        for anti in (False, True)
    ],
    ids=lambda i: f"{i['type']}{'-antithetic' if i['antithetic'] else ''}",
)
def test_every_draw_type_matches_numpy(rich_frame, integration):
    """Each Monte Carlo draw type reaches the likelihood: the model equals the reference on those draws."""
    spec = rich_spec(integration)
    model = gradfit.Model(spec, data=rich_frame)
    z, log_w = rich_nodes(spec, model.n_individuals)
    expected = reference_per_person(rich_frame, all_params(spec, model.start_params), z, log_w, two_lv=True)
    np.testing.assert_allclose(model.loglikelihood_per_person(), expected, rtol=RTOL, atol=0)
