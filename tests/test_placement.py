"""Splitting the people across devices (gradfit.placement) changes nothing but the speed."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradfit.iclv.build import pad_people
from gradfit.placement import Placement
from gradfit.runtime import MAX_CPU_DEVICES, tune_allocator


def _reference(model, theta):
    """Value and gradient on one device from the unpadded arrays, as built."""
    lik = model._built.likelihood
    return jax.jit(jax.value_and_grad(lik.total))(jnp.asarray(theta), model._built.arrays)


def test_padding_with_zero_weight_copies_leaves_value_and_gradient_unchanged(rich_model):
    lik, arrays = rich_model._built.likelihood, rich_model._built.arrays
    n = rich_model.n_individuals
    padded = pad_people(arrays, 8)
    assert padded["rows"].shape[0] % 8 == 0 and padded["rows"].shape[0] > n
    np.testing.assert_array_equal(padded["person_weight"][:n], 1.0)
    np.testing.assert_array_equal(padded["person_weight"][n:], 0.0)
    theta = jnp.asarray(rich_model._layout.start) * 1.1
    v0, g0 = _reference(rich_model, theta)
    v1, g1 = jax.jit(jax.value_and_grad(lik.total))(theta, padded)
    assert float(v1) == pytest.approx(float(v0), rel=1e-13)
    np.testing.assert_allclose(g1, g0, rtol=1e-11, atol=1e-11 * float(jnp.abs(g0).max()))


@pytest.mark.parametrize("count", [1, 2, 3])
def test_split_across_cpu_devices_matches_one_device(rich_model, count):
    devices = jax.devices("cpu")
    if len(devices) < count:
        pytest.skip(f"needs {count} CPU devices, JAX has {len(devices)}")
    placement = Placement(tuple(devices[:count]))
    arrays = placement.arrays(rich_model._built.arrays, jnp.float64)
    assert arrays["rows"].shape[0] % count == 0
    theta = np.asarray(rich_model._layout.start) * 0.9
    v0, g0 = _reference(rich_model, theta)
    v1, g1 = jax.jit(jax.value_and_grad(rich_model._built.likelihood.total))(
        placement.vector(theta, jnp.float64), arrays
    )
    assert float(v1) == pytest.approx(float(v0), rel=1e-12)
    np.testing.assert_allclose(g1, g0, rtol=1e-10, atol=1e-10 * float(jnp.abs(g0).max()))


def test_model_uses_one_cpu_device_per_core(rich_model):
    """gradfit asks JAX for one CPU device per core at import (tests import gradfit before JAX starts)."""
    if os.environ.get("GRADFIT_CPU_DEVICES") or "device_count" in os.environ.get("XLA_FLAGS", ""):
        pytest.skip("device count set by the environment")
    cores = len(os.sched_getaffinity(0))
    assert len(jax.devices("cpu")) == min(cores, MAX_CPU_DEVICES)
    if jax.default_backend() == "cpu":
        assert len(rich_model.placement.devices) == len(jax.devices("cpu"))
        # per-person outputs come back for the real people only, not the padding
        assert rich_model.loglikelihood_per_person().shape == (rich_model.n_individuals,)
        assert rich_model.scores().shape == (rich_model.n_individuals, len(rich_model.parameter_names))


def test_allocator_tuning_applies_on_glibc_and_can_be_turned_off(monkeypatch):
    import platform

    monkeypatch.setenv("GRADFIT_MALLOC_TUNING", "0")
    assert tune_allocator() is False
    monkeypatch.delenv("GRADFIT_MALLOC_TUNING")
    assert tune_allocator() is (platform.libc_ver()[0] == "glibc")


@pytest.mark.parametrize("setting", ["0", "DIR", None])
def test_compilation_cache_folder(tmp_path, setting):
    """Default: $XDG_CACHE_HOME/gradfit/jax; GRADFIT_COMPILATION_CACHE=DIR moves it, =0 turns it off."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "GRADFIT_COMPILATION_CACHE"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    if setting is not None:
        env["GRADFIT_COMPILATION_CACHE"] = "0" if setting == "0" else str(tmp_path / "mine")
    code = "import gradfit, jax; print(jax.config.jax_compilation_cache_dir)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    expected = {"0": "None", "DIR": str(tmp_path / "mine"), None: str(tmp_path / "xdg" / "gradfit" / "jax")}
    assert out.stdout.strip() == expected[setting]
    assert (setting == "0") != Path(expected[setting]).is_dir()


def test_per_device_sum_of_a_logit_without_latent_terms_matches_one_device(mnl_frame):
    """Placement.per_device_sum (what several GPUs run) on a logit whose utilities use no latent variable:
    its latent part has no terms, whose empty arrays of parameters JAX 0.11.2 crashed on under shard_map
    (iclv.choice builds zeros instead)."""
    import gradfit
    from conftest import mnl_spec

    devices = jax.devices("cpu")
    if len(devices) < 2:
        pytest.skip(f"needs 2 CPU devices, JAX has {len(devices)}")
    spec = mnl_spec()
    spec["estimation"] = {"device": "cpu", "devices": 2}
    model = gradfit.Model(spec, data=mnl_frame)
    assert model._built.likelihood.choice.c_coef.size == 0
    lik, placement = model._likelihood, model.placement
    theta = placement.vector(np.array([0.3, -0.7]), jnp.float64)
    v1, g1 = jax.jit(jax.value_and_grad(placement.per_device_sum(lik.total, model._shared)))(theta, model._arrays)
    v0, g0 = _reference(model, np.array([0.3, -0.7]))
    assert float(v1) == pytest.approx(float(v0), rel=1e-13)
    np.testing.assert_allclose(g1, g0, rtol=1e-12)


@pytest.mark.parametrize(("spin_s", "no_spin"), [(0.002, ()), (0.0, ()), (0.002, ("cpu",))])
def test_ready_waits_for_every_array_and_returns_the_tree(spin_s, no_spin, monkeypatch):
    """runtime.ready: every array of the tree computed when it returns, by spinning, by blocking once no spin
    time is left, or at once on a CPU (NO_SPIN: the default, a spinning thread would take a core from the
    computation); other leaves pass through."""
    from gradfit import runtime

    monkeypatch.setattr(runtime, "SPIN_S", spin_s)
    monkeypatch.setattr(runtime, "NO_SPIN", no_spin)
    x = jax.device_put(jnp.arange(200_000.0), jax.devices("cpu")[0])  # CPU arrays, also where a GPU is the default
    tree = {"a": jax.jit(lambda v: jnp.sort(jnp.sin(v)))(x), "b": (x * 2, 3, "text")}
    clock_reads = []
    real_clock = runtime.time.perf_counter
    monkeypatch.setattr(runtime.time, "perf_counter", lambda: clock_reads.append(1) or real_clock())
    out = runtime.ready(tree)
    monkeypatch.setattr(runtime.time, "perf_counter", real_clock)
    assert out is tree
    assert tree["a"].is_ready() and tree["b"][0].is_ready()
    np.testing.assert_array_equal(np.asarray(tree["b"][0]), 2 * np.arange(200_000.0))
    assert bool(clock_reads) == (not no_spin)  # the spin reads the clock for its deadline
