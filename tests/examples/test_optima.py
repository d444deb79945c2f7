"""Biogeme's published Optima "classic" ICLV (3.2.6, examples/latent/05latentChoiceFull): the log-likelihood at
its published estimates, by Biogeme's quadrature rule (its published value) and by the standard rule (an
independent plain-numpy computation, ../shared/notes/optima-classic-quadrature.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gradfit

OPTIMA = Path(__file__).resolve().parents[2] / "examples" / "optima"


@pytest.fixture(scope="module")
def published() -> dict:
    return json.loads((OPTIMA / "classic_published.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def classic() -> gradfit.Model:
    return gradfit.Model(OPTIMA / "classic.yaml")


def _at(model: gradfit.Model, published: dict) -> dict[str, float]:
    assert set(model.parameter_names) <= set(published)
    return {n: published[n] for n in model.parameter_names}


def test_sizes_match_the_published_run(classic):
    # the published report: 1906 observations, 45 estimated parameters
    assert classic.n_observations == 1906 and classic.n_individuals == 1906
    assert len(classic.parameter_names) == 45


def test_published_loglikelihood_with_biogemes_rule(classic, published):
    """-18384.2 as published (one decimal); the estimates are printed to 3 significant digits."""
    assert classic.spec.integration.rule == "biogeme"
    assert classic.loglikelihood(_at(classic, published)) == pytest.approx(published["loglikelihood"], abs=0.05)


def test_standard_rule_gives_the_independent_value(classic, published):
    spec = classic.spec.model_copy(
        update={"integration": classic.spec.integration.model_copy(update={"rule": "standard"})}
    )
    standard = classic.variant(spec)
    # plain numpy, 100-point probabilists' rule, at the same rounded estimates: -18383.761
    assert standard.loglikelihood(_at(standard, published)) == pytest.approx(-18383.761, abs=0.001)
