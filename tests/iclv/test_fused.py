"""The GPU forms of the per-draw products (Likelihood.for_device) compute the same likelihood as the CPU's."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradfit
from gradfit.iclv.simulate import seed_model


@pytest.fixture(scope="module")
def seed_small():
    sim = seed_model(n_people=60, n_tasks=5, n_draws=30)
    return gradfit.Model(sim.spec, data=sim.data)


@pytest.mark.parametrize("work", [jnp.float64, jnp.float32])
@pytest.mark.parametrize("which", ["rich_model", "seed_small"])
def test_gpu_forms_equal_the_matrix_products(request, which, work):
    model = request.getfixturevalue(which)
    lik, arrays = model._built.likelihood, model._built.arrays
    gpu = lik.for_device("gpu", work)
    assert lik.for_device("cpu", work) is lik
    assert gpu.choice.fused and gpu.structural.fused
    assert all(g.fused == (work == jnp.float32) for g in gpu.indicators)
    theta = jnp.asarray(model._layout.start) * 1.04
    v0, g0 = jax.jit(jax.value_and_grad(lik.total))(theta, arrays)
    v1, g1 = jax.jit(jax.value_and_grad(gpu.total))(theta, arrays)
    assert float(v1) == pytest.approx(float(v0), rel=1e-13)
    np.testing.assert_allclose(g1, g0, rtol=1e-11, atol=1e-11 * float(jnp.abs(g0).max()))
    # the fused ordered-indicator form, checked directly whatever the precision rule picks
    every = type(gpu)(
        **{**gpu.__dict__, "indicators": tuple(g.__class__(**{**g.__dict__, "fused": True}) for g in lik.indicators)}
    )
    v2, g2 = jax.jit(jax.value_and_grad(every.total))(theta, arrays)
    assert float(v2) == pytest.approx(float(v0), rel=1e-13)
    np.testing.assert_allclose(g2, g0, rtol=1e-11, atol=1e-11 * float(jnp.abs(g0).max()))
