"""Synthetic ICLV data shaped like the user's study, with the true parameter values and the spec to estimate it.

Default size: 326 people x 18 choice situations, 3 alternatives, 5 latent variables each measured by 6
five-point Likert indicators (ordered logit, person-level, about 1% 'no opinion' coded -1), 197 free parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

COVARIATES = ("age", "female", "income", "educ")
ALTS = ("A0", "A1", "A2")


@dataclass(frozen=True)
class Simulated:
    data: pd.DataFrame
    truth: dict[str, float]  # free parameters' true values
    spec: dict  # a spec (dict) that estimates exactly these parameters
    latent: pd.DataFrame | None = None  # each person's true latent variables (index: person id)


def seed_model(
    n_people: int = 326,
    n_tasks: int = 18,
    n_latent: int = 5,
    per_latent: int = 6,
    n_draws: int = 100,
    seed: int = 2026,
    data_path: str = "data.csv",
) -> Simulated:
    rng = np.random.default_rng(seed)
    lvs = [f"LV{k + 1}" for k in range(n_latent)]
    truth: dict[str, float] = {}
    params: dict[str, dict | float] = {}

    # People and structural equations: LV_k = gamma_k . x + (effect of LV1 on LV2) + N(0, 1).
    x = {
        "age": rng.normal(size=n_people),
        "female": rng.integers(0, 2, n_people).astype(float),
        "income": rng.normal(size=n_people),
        "educ": rng.integers(0, 2, n_people).astype(float),
    }
    eta = np.zeros((n_people, n_latent))
    latent_spec = {}
    for k, lv in enumerate(lvs):
        terms = []
        mean = np.zeros(n_people)
        for c in COVARIATES:
            name = f"g_{lv}_{c}"
            truth[name] = float(np.round(rng.uniform(-0.6, 0.6), 2))
            mean += truth[name] * x[c]
            terms.append(f"{name} * {c}")
        if k == 1:
            truth["b_LV2_LV1"] = 0.4
            mean += 0.4 * eta[:, 0]
            terms.append("b_LV2_LV1 * LV1")
        eta[:, k] = mean + rng.normal(size=n_people)
        latent_spec[lv] = {"mean": " + ".join(terms), "scale": 1.0}

    # Indicators: ordered logit with per-indicator thresholds (increments form keeps them ordered).
    indicators, thresholds, likert = {}, {}, {}
    base_tau = np.array([-2.0, -0.7, 0.7, 2.0])
    for k, lv in enumerate(lvs):
        for j in range(per_latent):
            ind = f"I{k + 1}{j + 1}"
            lam = float(np.round(rng.uniform(0.8, 1.6), 2))
            tau = np.sort(base_tau + rng.normal(scale=0.2, size=4))
            truth[f"lam_{ind}"] = lam
            incs = np.diff(tau, prepend=0.0)
            names = []
            for m, inc in enumerate(incs):
                pname = f"tau_{ind}_{m + 1}"
                truth[pname] = float(inc)
                names.append(pname)
            thresholds[ind] = {"form": "increments", "parameters": names}
            mu = lam * eta[:, k]
            u = rng.logistic(size=n_people)
            y = 1 + np.searchsorted(tau, mu + u).astype(float)
            y[rng.random(n_people) < 0.01] = -1.0  # 'no opinion'
            likert[ind] = y
            indicators[ind] = {
                "type": "ordered_logit",
                "loadings": {lv: f"lam_{ind}"},
                "thresholds": ind,
                "missing": [-1],
                "person_level": True,
            }

    # Choices: 3 alternatives, alternative A0 the reference.
    rows = n_people * n_tasks
    pid = np.repeat(np.arange(1, n_people + 1), n_tasks)
    person = pid - 1
    time = rng.uniform(0.2, 2.0, size=(rows, 3))
    cost = rng.uniform(0.5, 5.0, size=(rows, 3))
    v = np.zeros((rows, 3))
    utilities = {"A0": "b_time_A0 * time_A0 + b_cost_A0 * cost_A0"}
    truth.update({"b_time_A0": -1.0, "b_cost_A0": -0.4})
    v[:, 0] = -1.0 * time[:, 0] - 0.4 * cost[:, 0]
    for a in (1, 2):
        alt = ALTS[a]
        terms = [f"asc_{alt}", f"b_time_{alt} * time_{alt}", f"b_cost_{alt} * cost_{alt}"]
        truth[f"asc_{alt}"] = 0.3 * a - 0.5
        truth[f"b_time_{alt}"] = -0.8 - 0.2 * a
        truth[f"b_cost_{alt}"] = -0.3 - 0.1 * a
        v[:, a] = truth[f"asc_{alt}"] + truth[f"b_time_{alt}"] * time[:, a] + truth[f"b_cost_{alt}"] * cost[:, a]
        for c in COVARIATES:
            name = f"d_{alt}_{c}"
            truth[name] = float(np.round(rng.uniform(-0.4, 0.4), 2))
            v[:, a] += truth[name] * x[c][person]
            terms.append(f"{name} * {c}")
        for k, lv in enumerate(lvs):
            name = f"c_{alt}_{lv}"
            truth[name] = float(np.round(rng.uniform(-0.6, 0.6), 2))
            v[:, a] += truth[name] * eta[person, k]
            terms.append(f"{name} * {lv}")
        utilities[alt] = " + ".join(terms)
    choice = np.argmax(v + rng.gumbel(size=v.shape), axis=1)

    cols = {"id": pid, "task": np.tile(np.arange(1, n_tasks + 1), n_people), "choice": choice}
    for a, alt in enumerate(ALTS):
        cols[f"time_{alt}"] = np.round(time[:, a], 4)
        cols[f"cost_{alt}"] = np.round(cost[:, a], 4)
    for c in COVARIATES:
        cols[c] = np.round(x[c][person], 4)
    for ind, y in likert.items():
        cols[ind] = y[person].astype(int)
    data = pd.DataFrame(cols)

    for name, _value in truth.items():
        if name.startswith("tau_") and not name.endswith("_1"):
            params[name] = {"start": 1.0, "lower": 0.01}
        elif name.startswith("tau_"):
            params[name] = -1.5
        elif name.startswith("lam_"):
            params[name] = 1.0
        else:
            params[name] = 0.0
    spec = {
        "name": "seed_iclv",
        "description": f"Synthetic ICLV shaped like the user's study: {n_people} people x {n_tasks} situations, "
        f"3 alternatives, {n_latent} latent variables, {n_latent * per_latent} Likert indicators.",
        "data": {"path": data_path, "person": "id"},
        "parameters": params,
        "latent_variables": latent_spec,
        "thresholds": thresholds,
        "indicators": indicators,
        "choice": {
            "column": "choice",
            "alternatives": {alt: {"code": a, "utility": utilities[alt]} for a, alt in enumerate(ALTS)},
        },
        "integration": {"type": "halton", "n": n_draws},
        "estimation": {"optimizer": "trust_bfgs", "tolerance": 1e-6, "max_iterations": 2000},
    }
    latent = pd.DataFrame(eta, columns=lvs, index=pd.Index(np.arange(1, n_people + 1), name="id"))
    return Simulated(data, truth, spec, latent)
