"""Chunked evaluation (gradfit.core.chunks, estimation.chunk_size) gives the unchunked results to rounding,
and the memory a chunked value+gradient needs follows the chunk, not the number of people."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradfit
from conftest import rich_spec
from gradfit.core.chunks import Chunks, chunked_map, chunked_sum, plan_chunks
from gradfit.iclv.simulate import seed_model
from gradfit.placement import Placement

# gradfit splits a CPU into one device per core (gradfit.runtime): on a many-core machine the rich model's 31
# people leave too few per device for several chunks, so the chunked models below use at most two devices
# (CI's two cores: two, as everywhere else in the suite).
FEW_DEVICES = min(2, len(jax.devices("cpu")))

RTOL = 1e-10


def _close(got, want, rtol=RTOL):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * max(float(np.abs(want).max()), 1.0))


@pytest.fixture(scope="module")
def chunked_rich(rich_frame):
    spec = rich_spec()
    # 31 people: several chunks per device, the last one padded
    spec["estimation"] = {"chunk_size": 3, "devices": FEW_DEVICES}
    return gradfit.Model(spec, data=rich_frame)


def test_rich_model_is_cut_into_several_chunks(chunked_rich, rich_model):
    assert rich_model.chunks.count == 1
    assert chunked_rich.chunks.count >= 5
    shards = chunked_rich.chunks.shards
    assert chunked_rich._arrays["rows"].shape[0] % (shards * chunked_rich.chunks.count) == 0


def test_chunked_value_gradient_and_hessian_equal_unchunked(chunked_rich, rich_model):
    params = {k: v * 1.05 for k, v in rich_model.start_params.items()}
    _close(chunked_rich.loglikelihood(params), rich_model.loglikelihood(params))
    _close(list(chunked_rich.gradient(params).values()), list(rich_model.gradient(params).values()))
    _close(chunked_rich.hessian(params).to_numpy(), rich_model.hessian(params).to_numpy(), rtol=1e-9)


def test_chunked_per_person_outputs_equal_unchunked_in_person_order(chunked_rich, rich_model):
    _close(chunked_rich.loglikelihood_per_person(), rich_model.loglikelihood_per_person())
    _close(chunked_rich.scores(), rich_model.scores())
    got, want = chunked_rich.components(), rich_model.components()
    assert got.keys() == want.keys()
    for key in want:
        _close(got[key], want[key])
    got, want = chunked_rich.component_gradients(), rich_model.component_gradients()
    for key in want:
        _close(got[key], want[key])


def test_chunked_fit_reaches_the_same_optimum(chunked_rich, rich_model):
    a, b = chunked_rich.fit(), rich_model.fit()
    assert a.loglikelihood == pytest.approx(b.loglikelihood, rel=1e-9)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.estimates["robust_std_err"], b.estimates["robust_std_err"], rtol=1e-4)
    assert a.choice_loglikelihood == pytest.approx(b.choice_loglikelihood, rel=1e-10)
    assert a.settings["chunks"] == chunked_rich.chunks.count


def test_chunk_helpers_on_a_toy_sum():
    """An independent check of the layout: people in (shards, count, m) order come back in input order."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 3))
    arrays = {"x": x, "w": np.arange(3.0)}
    shared = frozenset({"w"})

    def fn(theta, a):
        return jnp.sum(jnp.sin(a["x"] * theta) @ a["w"])

    def per(theta, a):
        return jnp.exp(a["x"] @ a["w"] * theta)

    for chunks in (Chunks(1, 4), Chunks(2, 3), Chunks(4, 2), Chunks(3, 8)):
        theta = jnp.asarray(0.7)
        s = jax.jit(chunked_sum(fn, chunks, shared))(theta, arrays)
        g = jax.jit(jax.grad(chunked_sum(fn, chunks, shared)))(theta, arrays)
        _close(s, fn(theta, arrays), rtol=1e-13)
        _close(g, jax.grad(fn)(theta, arrays), rtol=1e-13)
        _close(jax.jit(chunked_map(per, chunks, shared))(theta, arrays), per(theta, arrays), rtol=1e-14)


@pytest.mark.parametrize(
    ("n", "shards", "size", "budget", "count"),
    [
        (100, 1, "auto", 1e12, 1),  # fits: one chunk
        (100, 1, "auto", 250.0, 4),  # 25 people per chunk fit
        (100, 2, "auto", 250.0, 2),  # 50 people per device, 25 per chunk
        (100, 1, 30, 1e12, 4),  # set in the spec: 30, 30, 30, 10 -> four chunks
        (100, 1, 1000, 1.0, 1),  # a chunk larger than the people is one chunk
        (100, 1, "auto", 0.0, 100),  # no room at all: one person at a time
    ],
)
def test_plan_chunks(n, shards, size, budget, count):
    chunks = plan_chunks(n, shards, bytes_per_person=10.0, budget_bytes=budget, size=size)
    assert chunks == Chunks(shards, count)


def test_auto_chunks_when_free_memory_is_small(rich_frame, rich_model, monkeypatch):
    """chunk_size auto: with little free memory reported, the model is cut into chunks and still agrees."""
    monkeypatch.setattr(Placement, "free_bytes", lambda self: 4e5)
    spec = rich_spec()
    spec["estimation"] = {"devices": FEW_DEVICES}
    model = gradfit.Model(spec, data=rich_frame)
    assert model.chunks.count > 1
    _close(model.loglikelihood(), rich_model.loglikelihood())


def test_peak_work_memory_follows_the_chunk_not_the_people():
    """XLA's own account of a compiled value+gradient's temporary memory: with chunks of 50 people it stays
    the same from 400 to 1,600 people, while the unchunked program's grows fourfold."""
    temp = {}
    for n in (400, 1600):
        sim = seed_model(n_people=n, n_tasks=4, n_latent=2, per_latent=3, n_draws=100)
        for size in ("auto", 50):
            spec = dict(sim.spec)
            spec["estimation"] = {**spec["estimation"], "chunk_size": size, "device": "cpu", "devices": 1}
            model = gradfit.Model(spec, data=sim.data)
            compiled = model._vg.lower(model._theta(None), model._arrays).compile()
            temp[n, size] = compiled.memory_analysis().temp_size_in_bytes
    assert temp[1600, "auto"] > 3.5 * temp[400, "auto"]
    assert temp[1600, 50] < 1.1 * temp[400, 50]
    assert temp[1600, 50] < 0.1 * temp[1600, "auto"]


@pytest.fixture(scope="module")
def generated_rich(rich_frame):
    spec = rich_spec({"type": "mlhs", "n": 20, "seed": 5, "antithetic": True, "store_draws": False})
    spec["estimation"] = {"chunk_size": 4, "devices": FEW_DEVICES}
    return gradfit.Model(spec, data=rich_frame)


def test_generated_draws_are_not_stored_and_equal_the_same_draws_stored(generated_rich, rich_frame):
    """store_draws: false regenerates per chunk exactly the draws generated_normal_draws gives for each person;
    a model given those draws as stored data computes the same log-likelihood and gradient."""
    from gradfit.core.generated_draws import generated_normal_draws

    assert "draws" not in generated_rich._arrays and generated_rich.chunks.count > 1
    n = generated_rich.n_individuals
    z = np.asarray(generated_normal_draws("mlhs", 5, np.arange(n), 20, 2, antithetic=True))
    stored = gradfit.Model(rich_spec({"type": "mlhs", "n": 20, "seed": 5, "antithetic": True}), data=rich_frame)
    stored._arrays = stored.placement.arrays({**stored._built.arrays, "draws": z}, jnp.float64)
    params = {k: v * 0.97 for k, v in stored.start_params.items()}
    _close(generated_rich.loglikelihood(params), stored.loglikelihood(params))
    _close(list(generated_rich.gradient(params).values()), list(stored.gradient(params).values()))
    _close(generated_rich.scores(params), stored.scores(params))


def test_generated_draws_another_seed_through_the_same_function(generated_rich):
    v0, g0 = generated_rich.value_and_grad_with_draws(5)
    v1, _ = generated_rich.value_and_grad_with_draws(6)
    assert v0 == pytest.approx(generated_rich.loglikelihood(), rel=1e-13)
    assert v1 != v0 and abs(v1 - v0) < 0.05 * abs(v0)


def test_store_draws_false_needs_a_generated_type(rich_frame):
    with pytest.raises(gradfit.errors.SpecError, match="store_draws: false needs type pseudo or mlhs"):
        gradfit.Model(rich_spec({"type": "sobol", "n": 20, "store_draws": False}), data=rich_frame)
