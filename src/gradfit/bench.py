"""`gradfit bench`: one gradient of the same model at the same parameters by finite differences and by
autodiff, on each device, timed after a warm-up; compilation timed separately. An autodiff gradient is timed
until it is computed, waited for as the optimisers wait (gradfit.runtime.ready).

Finite differences are done as the user's notes do them: P + 1 evaluations of the (compiled) log-likelihood,
one forward step per parameter, each a separate call. Compute only; the CLI prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import jax
import numpy as np

from gradfit.errors import GradfitError
from gradfit.iclv.spec import ModelSpec
from gradfit.model import Model
from gradfit.runtime import ready

METHODS = ("fd", "autodiff")
PRECISIONS = ("float64", "float32", "mixed")


@dataclass(frozen=True)
class Timing:
    method: str  # fd or autodiff
    device: str  # cpu or gpu
    device_name: str
    median_s: float
    iqr_s: float
    repeats: int
    compile_s: float
    evaluations: int  # likelihood calls per gradient (P + 1 for fd, 1 for autodiff)
    max_abs_diff: float | None = None  # |fd - autodiff|, max over parameters (fd rows)
    precision: str = "float64"


@dataclass(frozen=True)
class BenchResult:
    model: str
    n_parameters: int
    n_individuals: int
    draws: int
    timings: list[Timing]
    fits: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    # Per device and precision other than float64: the error of LL, gradient and (with fits) estimates
    # against float64 on the same device.
    precision_errors: list[dict] = field(default_factory=list)

    def speedups(self) -> list[dict]:
        """Each timing against finite differences on the CPU (the user's baseline), where measured."""
        base = next((t for t in self.timings if t.method == "fd" and t.device == "cpu"), None)
        if base is None:
            base = next((t for t in self.timings if t.method == "fd"), None)
        if base is None:
            return []
        return [
            {
                "method": t.method,
                "device": t.device,
                "precision": t.precision,
                "speedup_vs": f"fd/{base.device}",
                "speedup": base.median_s / t.median_s,
            }
            for t in self.timings
        ]


def _timed(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    call()  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        ts.append(time.perf_counter() - t0)
    q1, med, q3 = np.percentile(ts, [25, 50, 75])
    return float(med), float(q3 - q1)


def _available(device: str) -> bool:
    try:
        return len(jax.devices(device)) > 0
    except RuntimeError:
        return False


def _bench_device(model: Model, device: str, methods, repeat: int, fd_repeat: int, progress) -> list[Timing]:
    theta = model.placement.vector(model._layout.start, model.dtype)
    arrays = model._arrays
    name = model.placement.describe() + f" ({model.device.device_kind})"
    out = []
    t0 = time.perf_counter()
    jax.block_until_ready(model._f(theta, arrays))
    compile_value = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, g = jax.block_until_ready(model._vg(theta, arrays))
    compile_vg = time.perf_counter() - t0
    g = np.asarray(g)
    if "autodiff" in methods:
        progress(f"{device}: autodiff gradient x {repeat}")
        med, iqr = _timed(lambda: ready(model._vg(theta, arrays)), repeat)  # waited for as a fit waits
        precision = model.spec.estimation.precision
        out.append(Timing("autodiff", device, name, med, iqr, repeat, compile_vg, 1, precision=precision))
    if "fd" in methods:
        x0 = np.asarray(model._layout.start, dtype=float)
        n = len(x0)
        steps = np.sqrt(np.finfo(float).eps) * np.maximum(np.abs(x0), 1.0)

        def value(x):
            return float(model._f(model.placement.vector(x, model.dtype), arrays))

        def fd_gradient():
            f0 = value(x0)
            grad = np.empty(n)
            for i in range(n):
                x = x0.copy()
                x[i] += steps[i]
                grad[i] = (value(x) - f0) / steps[i]
            return grad

        progress(f"{device}: finite-difference gradient ({n + 1} evaluations) x {fd_repeat}")
        diff = float(np.max(np.abs(fd_gradient() - g)))
        med, iqr = _timed(fd_gradient, fd_repeat)
        precision = model.spec.estimation.precision
        out.append(Timing("fd", device, name, med, iqr, fd_repeat, compile_value, n + 1, diff, precision))
    return out


def _fit_row(model: Model, device: str) -> tuple[dict, np.ndarray, np.ndarray]:
    res = model.fit()
    row = {
        "device": device,
        "precision": model.spec.estimation.precision,
        "loglikelihood": res.loglikelihood,
        "iterations": res.iterations,
        "converged": res.converged,
        **{k: res.timings[k] for k in ("compile_s", "estimate_s", "inference_s")},
    }
    return row, res.theta, res.estimates["std_err"].to_numpy()


def _precision_error(device, precision, value_grad, reference, fit=None, fit_reference=None) -> dict:
    """LL and gradient at the start values, and the fitted estimates, against float64's."""
    (ll, g), (ll64, g64) = value_grad, reference
    out = {
        "device": device,
        "precision": precision,
        "ll_abs_error": abs(ll - ll64),
        "ll_rel_error": abs(ll - ll64) / max(abs(ll64), 1e-300),
        "grad_max_rel_error": float(np.max(np.abs(g - g64)) / max(float(np.max(np.abs(g64))), 1e-300)),
    }
    if fit is not None and fit_reference is not None:
        theta, theta64, se64 = fit[0], fit_reference[0], fit_reference[1]
        out["estimates_max_abs_error"] = float(np.max(np.abs(theta - theta64)))
        with np.errstate(invalid="ignore", divide="ignore"):
            out["estimates_max_shift_in_se"] = float(np.nanmax(np.abs(theta - theta64) / se64))
    return out


def run_bench(
    spec: ModelSpec,
    methods: Sequence[str] = METHODS,
    devices: Sequence[str] = ("cpu", "gpu"),
    repeat: int = 20,
    fd_repeat: int = 3,
    fit: bool = False,
    progress: Callable[[str], None] = lambda _: None,
    precisions: Sequence[str] | None = None,
) -> BenchResult:
    """precisions: time autodiff in each (default: the spec's own) and report each one's error against
    float64, which is added as the reference when missing; finite differences use the first."""
    precisions = list(precisions or [spec.estimation.precision])
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise GradfitError(f"--precisions: unknown precision {bad[0]!r}; use {', '.join(PRECISIONS)}")
    if len(precisions) > 1 and "float64" not in precisions:
        precisions.append("float64")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise GradfitError(f"--methods: unknown method {unknown[0]!r}; use fd and/or autodiff")
    bad = [d for d in devices if d not in ("cpu", "gpu")]
    if bad:
        raise GradfitError(f"--devices: unknown device {bad[0]!r}; use cpu and/or gpu")
    timings, fits, skipped, errors = [], [], [], []
    model = None
    for device in devices:
        if not _available(device):
            skipped.append(f"{device}: no {device} device visible to JAX")
            continue
        values, fitted = {}, {}
        for i, precision in enumerate(precisions):
            est = spec.estimation.model_copy(update={"device": device, "precision": precision})
            variant = spec.model_copy(update={"estimation": est})
            # the data are read and built once; other precisions reuse the built arrays
            model = Model(variant) if model is None else model.variant(variant)
            if i > 0:
                progress(f"{device}: {precision}")
            timings += _bench_device(model, device, methods if i == 0 else ["autodiff"], repeat, fd_repeat, progress)
            value, grad = model.value_and_grad(model._layout.start)
            values[precision] = (float(value), np.asarray(grad, dtype=float))
            if fit:
                progress(f"{device}: full fit ({precision})")
                row, theta, se = _fit_row(model, device)
                fits.append(row)
                fitted[precision] = (theta, se)
        if len(precisions) > 1:
            errors += [
                _precision_error(device, p, values[p], values["float64"], fitted.get(p), fitted.get("float64"))
                for p in precisions
                if p != "float64"
            ]
    if model is None:
        raise GradfitError(f"--devices: none of {', '.join(devices)} is available; use --devices cpu")
    return BenchResult(
        spec.name, len(model.parameter_names), model.n_individuals, spec.integration.n, timings, fits, skipped, errors
    )
