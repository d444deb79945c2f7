"""The same spec on 1 or 4 devices gives equal results; precision 'mixed' stays close to float64."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gradfit
from conftest import rich_spec, run_on_cpu_devices
from gradfit.errors import GradfitError

# Runs in a fresh process: JAX's CPU device count is fixed when its backend starts.
_FOUR_DEVICES = """
import json, sys
sys.path.insert(0, {tests!r})
import jax, numpy as np
import gradfit
from conftest import rich_data, rich_spec

frame = rich_data()
out = {{"visible": len(jax.devices("cpu"))}}
for label, est in [("one", {{"devices": 1}}), ("four", {{"devices": "all"}}), ("four_chunked", {{"chunk_size": 2}})]:
    spec = rich_spec()
    spec["estimation"] = {{"device": "cpu", **est}}
    m = gradfit.Model(spec, data=frame)
    params = {{k: v * 0.95 for k, v in m.start_params.items()}}
    out[label] = {{
        "devices": len(m.placement.devices),
        "chunks": m.chunks.count,
        "ll": m.loglikelihood(params),
        "grad": list(m.gradient(params).values()),
        "scores": m.scores(params).tolist(),
        "per_person": m.loglikelihood_per_person(params).tolist(),
    }}
print(json.dumps(out))
"""


def test_four_simulated_devices_equal_one_device():
    out = run_on_cpu_devices(_FOUR_DEVICES.format(tests=str(Path(__file__).parent)), 4)
    assert out["visible"] == 4
    one, four, chunked = out["one"], out["four"], out["four_chunked"]
    assert (one["devices"], four["devices"], chunked["devices"]) == (1, 4, 4)
    assert chunked["chunks"] > 1
    for other in (four, chunked):
        assert other["ll"] == pytest.approx(one["ll"], rel=1e-12)
        for key in ("grad", "scores", "per_person"):
            want = np.asarray(one[key])
            np.testing.assert_allclose(other[key], want, rtol=1e-10, atol=1e-10 * np.abs(want).max())


def test_more_devices_than_visible_is_a_one_line_error(rich_frame):
    spec = rich_spec()
    spec["estimation"] = {"device": "cpu", "devices": 64}
    with pytest.raises(GradfitError, match=r"estimation.devices: 64 cpu devices asked for"):
        gradfit.Model(spec, data=rich_frame)


@pytest.fixture(scope="module")
def mixed_model(rich_frame):
    spec = rich_spec()
    spec["estimation"] = {"precision": "mixed"}
    return gradfit.Model(spec, data=rich_frame)


def test_mixed_precision_works_in_float32_and_sums_in_float64(mixed_model, rich_model):
    assert mixed_model._arrays["draws"].dtype == np.float32
    assert mixed_model._arrays["person_weight"].dtype == np.float64
    theta = mixed_model._theta(None)
    value, grad = mixed_model._vg(theta, mixed_model._arrays)
    assert value.dtype == np.float64 and grad.dtype == np.float64
    ll64, ll = rich_model.loglikelihood(), mixed_model.loglikelihood()
    assert ll != ll64  # really computed in single precision
    assert abs(ll - ll64) <= 1e-5 * abs(ll64)
    g64, g = rich_model.gradient(), mixed_model.gradient()
    scale = max(abs(v) for v in g64.values())
    assert max(abs(g[k] - g64[k]) for k in g64) <= 1e-3 * scale


def test_mixed_precision_fit_lands_near_the_float64_optimum(mixed_model, rich_model):
    mixed, exact = mixed_model.fit(), rich_model.fit()
    assert mixed.settings["precision"] == "mixed"
    assert mixed.loglikelihood == pytest.approx(exact.loglikelihood, abs=1e-3)
    # The rich model's random data leave a nearly flat direction (parameters 10 and 12 move together; its
    # Hessian is singular, so there are no standard errors), along which float32 rounding decides where the
    # fit stops: a few hundredths from the float64 fit on a CPU, 0.14 on an H100. So the distance is measured
    # by what it costs in float64 LL, which bounds every direction the data do determine (1/2 curvature * d^2).
    at_mixed = rich_model.loglikelihood(dict(zip(rich_model.parameter_names, mixed.theta, strict=True)))
    assert exact.loglikelihood - at_mixed == pytest.approx(0.0, abs=1e-4)
