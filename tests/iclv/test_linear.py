"""Linear decomposition of utilities: which terms become matrix products, and that the result is unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gradfit
from gradfit.expr import parse
from gradfit.iclv.linear import decompose
from gradfit.io.overrides import apply_overrides
from gradfit.io.spec import read_spec

PARAMS, LVS, SLOTS = {"s", "a", "b", "c"}, {"eta"}, {"x", "z"}


def test_a_scale_times_a_linear_utility_is_distributed():
    form = decompose(parse("s * (a + b * x - c * eta) / 2"), PARAMS, LVS, SLOTS, max_params=2, expand=True)
    assert form.rest is None
    assert sorted(form.data_terms) == [(0.5, ("s", "a"), ()), (0.5, ("s", "b"), ("x",))]
    assert form.lv_terms == ((-0.5, ("s", "c"), "eta"),)


def test_products_of_data_columns_are_one_term_when_several_parameters_are_allowed():
    form = decompose(parse("s * (a * x + b) * z"), PARAMS, LVS, SLOTS, max_params=2, expand=True)
    assert sorted(form.data_terms) == [(1.0, ("s", "a"), ("x", "z")), (1.0, ("s", "b"), ("z",))]


@pytest.mark.parametrize(
    "text",
    [
        "a * exp(b * eta) * x + s * (c + b)",  # exp(...) stays whole: expanding would evaluate it twice
        "s * (a + exp(b * eta))",
        "s * a * b * x",  # three parameters
        "a * x * eta",  # data times latent variable
    ],
)
def test_a_term_that_is_not_entirely_linear_stays_whole(text):
    form = decompose(parse(text), PARAMS, LVS, SLOTS, max_params=2, expand=True)
    assert form.rest is not None and form.rest.names <= PARAMS | LVS | SLOTS
    if text.startswith("a * exp"):  # the linear top-level term next to it is still distributed
        assert sorted(form.data_terms) == [(1.0, ("s", "b"), ()), (1.0, ("s", "c"), ())]


def test_without_expansion_one_parameter_per_term_as_before():
    form = decompose(parse("s * (a + b * x) + c * x"), PARAMS, LVS, SLOTS)
    assert form.data_terms == ((1.0, ("c",), ("x",)),)
    assert form.rest is not None and form.rest.names == {"s", "a", "b", "x"}


def test_distributed_utilities_give_the_same_likelihood():
    """h04's utilities are scale * (linear); written with exp(log(scale)) they cannot be distributed and take
    the general per-draw path. Same log-likelihood and gradient."""
    spec = apply_overrides(
        read_spec(Path(__file__).resolve().parents[2] / "examples" / "optima" / "h04.yaml"),
        ["integration.n=50"],
        "test",
    )
    alts = spec.choice.alternatives
    general = {
        name: alt.model_copy(
            update={"utility": alt.utility.replace("choice_scale_parameter *", "exp(log(choice_scale_parameter)) *", 1)}
        )
        for name, alt in alts.items()
    }
    spec_general = spec.model_copy(update={"choice": spec.choice.model_copy(update={"alternatives": general})})
    fast, slow = gradfit.Model(spec), gradfit.Model(spec_general)
    assert fast._built.likelihood.choice.rest == (None, None, None)
    assert all(r is not None for r in slow._built.likelihood.choice.rest)
    params = {n: v + 0.1 * (i % 3) for i, (n, v) in enumerate(fast.start_params.items())}
    assert fast.loglikelihood(params) == pytest.approx(slow.loglikelihood(params), rel=1e-12)
    g_fast, g_slow = fast.gradient(params), slow.gradient(params)
    np.testing.assert_allclose([g_fast[n] for n in g_fast], [g_slow[n] for n in g_fast], rtol=1e-9, atol=1e-9)
