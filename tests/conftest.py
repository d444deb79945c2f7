"""Shared fixtures: a small synthetic panel that exercises every part of the ICLV engine, and its spec.

`rich_data()` / `rich_spec()` describe ~30 people x ~4 rows with two latent variables (LV2 depends on LV1,
correlated errors), one indicator of each type (ordered probit with symmetric thresholds and an odd number
of cuts, ordered logit with increments, normal, binary logit, plus an ordered probit with cutpoints), person-
and row-level indicators, missing codes and empty cells, a three-alternative logit with an availability
condition and a text column compared with a string, derived columns and a row filter that drops rows and one
whole person. Rows are shuffled, so people do not appear in id order.

The data are random (not drawn from the model): the likelihood is a function of any data, and the tests
compare it with independent implementations.

Compiling a model's likelihood takes seconds, so models are session fixtures shared between test files.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile

import jax
import numpy as np
import pandas as pd
import pytest

# The session's own compilation cache is set in pytest_configure; keep gradfit's default one out of $HOME.
os.environ.setdefault("GRADFIT_COMPILATION_CACHE", "0")
import gradfit  # noqa: E402

BRANDS = ("Artemis", "Zephyr", "Boreas")

_CACHE_DIR: str | None = None


def pytest_configure(config):
    """A persistent compilation cache in a temporary folder, for this test session only.

    Models with the same structure and data shapes lower to the same program (data enter as arguments), so
    e.g. the replications in test_recovery.py compile once instead of once each. Must be set before anything
    compiles, hence here.
    """
    global _CACHE_DIR
    _CACHE_DIR = tempfile.mkdtemp(prefix="gradfit-test-jax-cache-")
    jax.config.update("jax_compilation_cache_dir", _CACHE_DIR)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def pytest_unconfigure(config):
    if _CACHE_DIR is not None:
        shutil.rmtree(_CACHE_DIR, ignore_errors=True)


def run_on_cpu_devices(code: str, count: int) -> dict:
    """Run `code` in a fresh Python process whose JAX has `count` CPU devices (the count is fixed when JAX's
    backend starts, so it cannot change inside this process); returns the JSON its last output line prints."""
    env = {**os.environ, "GRADFIT_CPU_DEVICES": str(count), "GRADFIT_COMPILATION_CACHE": "0"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rich_data(seed: int = 20240611) -> pd.DataFrame:
    """Raw data (before derived columns and filter): one row per person and task, shuffled."""
    rng = np.random.default_rng(seed)
    n_people = 32
    rows = []
    for p in range(n_people):
        pid = f"P{p:02d}"
        age = round(float(rng.normal()), 3)
        income = float(rng.integers(20, 90) * 1000)
        n_tasks = int(rng.choice([3, 4, 5]))  # tasks 5 are filtered out
        q1 = int(rng.integers(1, 7))  # person-level ordered probit, levels 1..6
        q1_all_missing = rng.random() < 0.1
        q3 = round(float(rng.normal(2.0, 1.0)), 3)  # person-level normal
        q3_missing = rng.random() < 0.1
        for t in range(1, n_tasks + 1):
            # person-level values: sometimes repeated, sometimes an empty cell or a missing code in a row
            r = rng.random()
            if q1_all_missing:
                v1 = -1.0
            elif r < 0.15:
                v1 = np.nan
            elif r < 0.25:
                v1 = 99.0
            else:
                v1 = float(q1)
            v3 = -99.0 if q3_missing else (np.nan if rng.random() < 0.1 else q3)
            q2 = float(rng.integers(1, 5)) if rng.random() > 0.1 else (0.0 if rng.random() < 0.5 else np.nan)
            q4 = float(rng.integers(1, 3)) if rng.random() > 0.1 else 9.0
            q5 = float(rng.integers(1, 4)) if rng.random() > 0.05 else np.nan
            rail_av = int(rng.random() < 0.7)
            time = rng.uniform(0.2, 2.0, size=3).round(3)
            cost = rng.uniform(0.5, 6.0, size=3).round(2)
            choice = int(rng.choice([1, 2, 3] if rail_av else [1, 2]))
            rows.append(
                {
                    "pid": pid,
                    "task": t,
                    "keep": int(rng.random() > 0.05),
                    "age": age,
                    "income": income,
                    "q1": v1,
                    "q2": q2,
                    "q3": v3,
                    "q4": q4,
                    "q5_raw": q5,
                    "time_car": time[0],
                    "time_bus_min": round(time[1] * 60, 2),
                    "time_rail": time[2],
                    "cost_car": cost[0],
                    "cost_bus": cost[1],
                    "cost_rail": cost[2],
                    "brand": BRANDS[int(rng.integers(0, 3))],
                    "rail_av": rail_av,
                    "choice": choice,
                }
            )
    df = pd.DataFrame(rows)
    df.loc[df["pid"] == "P05", "keep"] = 0  # a person removed entirely by the filter
    return df.iloc[rng.permutation(len(df))].reset_index(drop=True)


def rich_spec(integration: dict | None = None) -> dict:
    """Spec of the rich model (dict form); `data.path` is a placeholder: pass the DataFrame to `Model`."""
    positive = {"lower": 0.01}
    return {
        "name": "rich_test_model",
        "description": "two latent variables, every indicator type, availability, text column",
        "data": {
            "path": "rich.csv",
            "person": "pid",
            "derived": {"inc": "income / 10000 - 5", "time_bus": "time_bus_min / 60"},
            "filter": "task <= 4 and keep == 1",
        },
        "parameters": {
            "s_LV1": {"start": 1.0, "fixed": True},
            "g1_age": 0.3,
            "g2_inc": 0.2,
            "b21": 0.5,
            "s_LV2": {"start": 0.8, **positive},
            "rho12": 0.3,
            "lam1": 1.2,
            "d1": {"start": 0.6, **positive},
            "d2": {"start": 0.9, **positive},
            "lam2": 0.8,
            "lam2b": 0.3,
            "a2": 0.1,
            "s2": {"start": 1.3, **positive},
            "t1": -1.0,
            "t2": {"start": 1.0, **positive},
            "t3": {"start": 1.2, **positive},
            "lam3": 0.7,
            "a3": 2.0,
            "sig3": {"start": 0.9, **positive},
            "lam4": -0.6,
            "a4": 0.2,
            "lam5": {"start": 0.5, "fixed": True},  # LV2's scale is free: a fixed loading identifies it
            "c1": -0.4,
            "b_time": -0.8,
            "b_cost": -0.3,
            "asc_bus": 0.2,
            "asc_rail": -0.1,
            "b_artemis": 0.4,
            "c_bus_LV2": 0.5,
            "c_rail_LV1": -0.4,
            "d_bus_age": 0.1,
        },
        "latent_variables": {
            "LV1": {"mean": "g1_age * age", "scale": "s_LV1"},
            "LV2": {"mean": "g2_inc * inc + b21 * LV1", "scale": "s_LV2"},
        },
        "correlations": [{"between": ["LV1", "LV2"], "parameter": "rho12"}],
        "thresholds": {
            "sym": {"form": "symmetric", "parameters": ["d1", "d2"]},
            "inc4": {"form": "increments", "parameters": ["t1", "t2", "t3"]},
            "cut3": {"form": "cutpoints", "parameters": ["c1", 1.0]},
        },
        "indicators": {
            "q1": {
                "type": "ordered_probit",
                "loadings": {"LV1": "lam1"},
                "thresholds": "sym",
                "levels": [1, 2, 3, 4, 5, 6],
                "missing": [-1, 99],
                "person_level": True,
            },
            "q2": {
                "type": "ordered_logit",
                "loadings": {"LV2": "lam2", "LV1": "lam2b"},
                "intercept": "a2",
                "scale": "s2",
                "thresholds": "inc4",
                "missing": [0],
            },
            "q3": {
                "type": "normal",
                "loadings": {"LV2": "lam3"},
                "intercept": "a3",
                "scale": "sig3",
                "missing": [-99],
                "person_level": True,
            },
            "q4": {
                "type": "binary_logit",
                "loadings": {"LV1": "lam4"},
                "intercept": "a4",
                "levels": [1, 2],
                "missing": [9],
            },
            "q5": {
                "type": "ordered_probit",
                "column": "q5_raw",
                "loadings": {"LV2": "lam5"},
                "thresholds": "cut3",
            },
        },
        "choice": {
            "column": "choice",
            "alternatives": {
                "car": {"code": 1, "utility": "b_time * time_car + b_cost * cost_car"},
                "bus": {
                    "code": 2,
                    "utility": "asc_bus + b_time * time_bus + b_cost * cost_bus + c_bus_LV2 * LV2 + d_bus_age * age",
                },
                "rail": {
                    "code": 3,
                    "utility": 'asc_rail + b_time * time_rail + b_cost * cost_rail + b_artemis * (brand == "Artemis")'
                    " + c_rail_LV1 * LV1",
                    "available": "rail_av == 1",
                },
            },
        },
        "integration": integration or {"type": "sobol", "n": 20, "seed": 11, "antithetic": True},
    }


def mnl_data(n_people: int = 40, n_tasks: int = 4, seed: int = 3) -> pd.DataFrame:
    """A small binary-logit panel with a known data-generating process (for quick fits)."""
    rng = np.random.default_rng(seed)
    n = n_people * n_tasks
    x = rng.normal(size=n).round(4)
    v = 0.5 + 1.0 * x
    choice = (rng.random(n) < 1.0 / (1.0 + np.exp(-v))).astype(int)
    return pd.DataFrame({"id": np.repeat(np.arange(1, n_people + 1), n_tasks), "x": x, "choice": choice})


def mnl_spec(data_path: str = "mnl.csv", with_latent: bool = True) -> dict:
    """Spec of `mnl_data`: a binary logit.

    with_latent=True adds a latent variable that nothing uses, integrated with a single quadrature node: the
    likelihood is exactly the plain logit's. It works around a model without latent variables failing to build
    (see test_api.py::test_choice_only_model_without_latent_variables); compiles in a few seconds.
    """
    spec = {
        "name": "tiny_mnl",
        "data": {"path": data_path, "person": "id"},
        "parameters": {"asc": 0.0, "beta_x": 0.0},
        "choice": {
            "column": "choice",
            "alternatives": {"no": {"code": 0, "utility": "0"}, "yes": {"code": 1, "utility": "asc + beta_x * x"}},
        },
    }
    if with_latent:
        spec["latent_variables"] = {"unused": {"mean": "0"}}
        spec["integration"] = {"type": "gauss_hermite", "n": 1}
    return spec


def lower_bounds(spec: dict) -> dict[str, float]:
    """Lower bounds declared in a spec dict (-inf where none)."""
    return {
        name: (ps.get("lower") if isinstance(ps, dict) and ps.get("lower") is not None else -np.inf)
        for name, ps in spec["parameters"].items()
    }


def perturbed(model: gradfit.Model, spec: dict, seed: int, size: float = 0.4) -> dict[str, float]:
    """The model's start values moved by independent N(0, size^2) steps, kept 0.05 above lower bounds."""
    rng = np.random.default_rng(seed)
    lower = lower_bounds(spec)
    return {name: max(value + size * rng.normal(), lower[name] + 0.05) for name, value in model.start_params.items()}


@pytest.fixture(scope="session")
def rich_frame() -> pd.DataFrame:
    return rich_data()


@pytest.fixture
def rich_spec_dict() -> dict:
    return copy.deepcopy(rich_spec())


@pytest.fixture(scope="session")
def rich_model(rich_frame) -> gradfit.Model:
    """The rich model, shared by the likelihood, gradient and API tests (compiled once per function)."""
    return gradfit.Model(rich_spec(), data=rich_frame)


@pytest.fixture(scope="session")
def mnl_frame() -> pd.DataFrame:
    return mnl_data()
