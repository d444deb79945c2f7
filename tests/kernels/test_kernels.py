"""The Pallas kernels (ordered-logit indicators, panel-logit denominators) against the XLA form: value and
gradient equal, on a model with missing answers, an unavailable alternative and sizes that are not multiples of
the kernels' blocks. On a CPU the kernels run in Pallas' interpreter; on a GPU also compiled."""

from __future__ import annotations

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradfit
from conftest import run_on_cpu_devices
from gradfit.iclv.simulate import seed_model
from gradfit.kernels import _blocks

MODES = ["interpret"] + (["gpu"] if jax.default_backend() == "gpu" else [])


@pytest.fixture(scope="module", params=["cross-loading", "one loading each"])
def small(request):
    sim = seed_model(n_people=13, n_tasks=3, n_latent=2, per_latent=3, n_draws=9, seed=4)
    data = sim.data.copy()
    rng = np.random.default_rng(0)
    person = data["id"].to_numpy()
    for col in ("I11", "I22"):  # some people did not answer: their rows carry no value (masked out)
        silent = rng.choice(np.unique(person), size=3, replace=False)
        data.loc[np.isin(person, silent), col] = np.nan
    data = data[~((data["id"] == 2) & (data["task"] == 3))]  # a person with fewer rows: padding rows
    spec = dict(sim.spec)
    if request.param == "cross-loading":  # the kernels' general loop over indicators
        # one indicator loads on both latent variables: the kernel's reverse pass sums 2 loadings for it, 1 for
        # the others
        spec["indicators"] = {**spec["indicators"]}
        spec["indicators"]["I12"] = {**spec["indicators"]["I12"], "loadings": {"LV1": "lam_I12", "LV2": "lam_I12_LV2"}}
        spec["parameters"] = {**spec["parameters"], "lam_I12_LV2": 0.3}
    else:  # each indicator on one latent variable: the kernels loop over each variable's indicators
        # (kernels.ordered._groups), listed here interleaved so that their order differs from the spec's
        spec["indicators"] = dict(sorted(spec["indicators"].items(), key=lambda kv: kv[0][::-1]))
    choice = dict(spec["choice"])
    data["a2_on"] = (data["task"] != 2).astype(int)
    data.loc[(data["a2_on"] == 0) & (data["choice"] == 2), "choice"] = 1
    choice["alternatives"] = {**choice["alternatives"], "A2": {**choice["alternatives"]["A2"], "available": "a2_on"}}
    spec["choice"] = choice
    return gradfit.Model(spec, data=data)


@pytest.mark.parametrize(
    ("block", "parts"),
    [(_blocks.Block(2, 128, 1), 1), (_blocks.Block(1, 32, 1), 1), (_blocks.Block(1, 32, 1), 4)],
    ids=["2x128", "1x32", "1x32-4-parts"],
)
@pytest.mark.parametrize("mode", MODES)
def test_kernel_equals_xla_value_and_gradient(small, mode, block, parts, monkeypatch):
    monkeypatch.setattr(_blocks, "override", block)  # both shapes, whatever this size would choose
    # the indicators split between programs: 4 parts of 6 indicators cut the per-variable runs of 3 (or the one
    # run of 6) in different places
    monkeypatch.setattr(_blocks, "override_parts", parts)
    lik = small._built.likelihood
    assert all(g.kind == "ordered_logit" and g.person_level for g in lik.indicators)
    assert all(r is None for r in lik.choice.rest)  # the factored choice form, which the kernel takes
    jax.clear_caches()  # the block shape is read when a kernel is traced
    kernel = replace(
        lik, indicators=tuple(replace(g, kernel=mode) for g in lik.indicators), choice=replace(lik.choice, kernel=mode)
    )
    rng = np.random.default_rng(1)
    for _ in range(2):  # the start values and a random point
        theta = small._theta(None) + 0.3 * rng.normal(size=len(small.parameter_names)) * (_ > 0)
        (v0, g0) = jax.jit(jax.value_and_grad(lik.total))(theta, small._arrays)
        (v1, g1) = jax.jit(jax.value_and_grad(kernel.total))(theta, small._arrays)
        assert float(v1) == pytest.approx(float(v0), rel=1e-13)
        np.testing.assert_allclose(np.asarray(g1), np.asarray(g0), rtol=1e-10, atol=1e-10 * np.abs(g0).max())
        assert np.isfinite(np.asarray(g1)).all()


def test_kernels_are_used_only_where_they_apply(small, monkeypatch):
    monkeypatch.setenv("GRADFIT_KERNELS", "1")
    lik = small._built.likelihood
    on = lik.with_kernels("gpu", jnp.float64)
    assert all(g.kernel == "gpu" for g in on.indicators) and on.choice.kernel == "gpu"
    for args in (("cpu", jnp.float64), ("gpu", jnp.float32)):
        assert lik.with_kernels(*args) is lik, args
    monkeypatch.setenv("GRADFIT_KERNELS", "0")  # the user's switch
    assert lik.with_kernels("gpu", jnp.float64) is lik


def test_block_shape_follows_the_problem_size():
    """One person per program; the longest run of draws that leaves enough programs to fill the GPU."""
    assert _blocks.block_for(326, 100) == (1, 32, 1)  # the seed's size: 1,304 programs
    assert _blocks.block_for(1_000, 200) == (1, 64, 1)
    assert _blocks.block_for(10_000, 1_000) == (1, 128, 1)
    assert _blocks.block_for(_blocks.MIN_PROGRAMS, 128) == (1, 128, 1)
    assert _blocks.block_for(_blocks.MIN_PROGRAMS - 1, 128) == (1, 64, 1)


def test_indicators_split_between_programs_where_blocks_are_few():
    """Few blocks (the seed's 1,304): each block's indicators go to several programs, at least MIN_PART_ITEMS
    each; many blocks: one program per block."""
    assert _blocks.parts_for(326 * 4, 30) == 4  # the seed: 5,216 programs
    assert _blocks.parts_for(100, 30) == 30 // _blocks.MIN_PART_ITEMS  # capped by the indicators
    assert _blocks.parts_for(10_000 * 8, 30) == 1
    assert _blocks.parts_for(100, 3) == 1


@pytest.mark.parametrize("n_parts", [1, 2, 3, 7])
@pytest.mark.parametrize("loads", [None, ((0, 1),) + ((1,),) * 6, ((1,), (0,), (2,), (0,), (1,), (0,), (2,))])
def test_parts_visit_every_indicator_once(loads, n_parts):
    """The parts' segments together visit each indicator exactly once, and a segment with a latent variable
    holds only indicators that load on it alone."""
    from gradfit.kernels.ordered import _plan

    order, parts = _plan(loads, 7, n_parts)
    order = range(7) if order is None else order  # None: the spec's order
    assert len(parts) == n_parts
    seen = [int(order[i]) for segments in parts for _, start, stop in segments for i in range(start, stop)]
    assert sorted(seen) == list(range(7))
    for segments in parts:
        for lv, start, stop in segments:
            assert start < stop
            if lv is not None:
                assert all(loads[int(order[i])] == (lv,) for i in range(start, stop))
            else:  # cross-loadings or unknown loads: the spec's order
                assert loads is None or any(len(x) != 1 for x in loads)


# Runs in a fresh process: JAX's CPU device count is fixed when its backend starts.
_KERNELS_ON_FOUR_DEVICES = """
import json
from dataclasses import replace
import jax, numpy as np
import gradfit
from gradfit.core.chunks import chunked_sum
from gradfit.iclv.simulate import seed_model

sim = seed_model(n_people=13, n_tasks=3, n_latent=2, per_latent=3, n_draws=9, seed=4)
out = {}
for label, est in [("one", {"devices": 1}), ("four", {"devices": "all"}), ("four_chunked", {"chunk_size": 2})]:
    m = gradfit.Model({**sim.spec, "estimation": {"device": "cpu", **est}}, data=sim.data)
    lik = m._built.likelihood
    kern = replace(lik, indicators=tuple(replace(g, kernel="interpret") for g in lik.indicators),
                   choice=replace(lik.choice, kernel="interpret"))
    pl = m.placement  # per_device_sum: what several GPUs run (CPUs sum through XLA's partitioner)
    summed = kern.total if len(pl.devices) == 1 else pl.per_device_sum(kern.total, m._shared)
    f = chunked_sum(summed, m.chunks, m._shared)
    theta = m._theta({k: 0.9 * v + 0.05 for k, v in m.start_params.items()})
    v, g = jax.jit(jax.value_and_grad(f))(theta, m._arrays)
    out[label] = {"devices": len(m.placement.devices), "chunks": m.chunks.count, "ll": float(v),
                  "grad": np.asarray(g).tolist()}
print(json.dumps(out))
"""


def test_kernels_on_several_devices_equal_one_device():
    """Each device runs the kernels on its own people (Placement.per_device_sum), with and without chunks."""
    out = run_on_cpu_devices(_KERNELS_ON_FOUR_DEVICES, 4)
    one = out["one"]
    assert [out[k]["devices"] for k in ("one", "four", "four_chunked")] == [1, 4, 4]
    assert out["four_chunked"]["chunks"] > 1
    for other in (out["four"], out["four_chunked"]):
        assert other["ll"] == pytest.approx(one["ll"], rel=1e-12)
        want = np.asarray(one["grad"])
        np.testing.assert_allclose(other["grad"], want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
