"""Opt-in benchmark: value+gradient and a full fit of the seed-sized ICLV model (326 x 18, 5 LVs, 197 params).

    python benchmarks/bench_seed.py --device cpu|gpu [--draws 100] [--repeat 50] [--no-fit] [--json FILE]
        [--schedule concurrent|serial] [--bind auto|off]

Timings are medians after warm-up (compilation is timed separately); the clock is read once the results are
computed, waited for as gradfit's optimisers wait (gradfit.runtime.ready: a spin on is_ready(), then a
block). The value+gradient is also timed, call by call alternately, with jax.block_until_ready, whose
thread wake-up adds ~20-30 us on the H100 VM.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import jax
import numpy as np

import gradfit
from gradfit.iclv.simulate import seed_model
from gradfit.runtime import ready


def add_program_options(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--schedule",
        default="concurrent",
        choices=["concurrent", "serial"],
        help="GPU kernel order in the CUDA graph: gradfit's default (concurrent) or XLA's (serial)",
    )
    ap.add_argument("--xla", action="append", default=[], metavar="KEY=VALUE", help="more XLA options on GPUs")
    ap.add_argument(
        "--bind",
        default="auto",
        choices=["auto", "off"],
        help="the arrays as constants of the program on one GPU (gradfit's default, model.BIND_MAX_BYTES) or off",
    )


def xla_options(items: list[str]) -> dict:
    """KEY=VALUE strings as XLA options; true / false become booleans, which XLA's bool options want."""
    out = {}
    for item in items:
        key, value = item.split("=", 1)
        out[key] = {"true": True, "false": False}.get(value.lower(), value)
    return out


def apply_program_options(args: argparse.Namespace) -> None:
    """Before building a model: 'serial' drops gradfit's GPU compiler options (gradfit.model); --xla adds;
    --bind off keeps the arrays as the programs' arguments."""
    extra = xla_options(args.xla)
    if args.bind == "off":
        gradfit.model.BIND_MAX_BYTES = -1
    if args.schedule == "serial":
        gradfit.model.GPU_COMPILER_OPTIONS = extra or None
    else:
        gradfit.model.GPU_COMPILER_OPTIONS = {**gradfit.model.GPU_COMPILER_OPTIONS, **extra}


def _samples(fn, repeat: int, waits) -> list[list[float]]:
    """Seconds per call of fn for each way of waiting, the ways alternating call by call."""
    out: list[list[float]] = [[] for _ in waits]
    for _ in range(repeat):
        for wait, samples in zip(waits, out, strict=True):
            t0 = time.perf_counter()
            wait(fn())
            samples.append(time.perf_counter() - t0)
    return out


def _median_iqr(samples: list[float]) -> tuple[float, float]:
    q = np.percentile(samples, [25, 75])
    return statistics.median(samples), float(q[1] - q[0])


def timed(fn, repeat: int, wait=ready) -> tuple[float, float]:
    return _median_iqr(_samples(fn, repeat, [wait])[0])


def timed_both(fn, repeat: int) -> tuple[float, float, float]:
    """(median, IQR) with gradfit's wait and the median with jax.block_until_ready, calls alternating."""
    mine, blocking = _samples(fn, repeat, [ready, jax.block_until_ready])
    return (*_median_iqr(mine), statistics.median(blocking))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"])
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--people", type=int, default=326)
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--precision", default="float64", choices=["float64", "float32"])
    ap.add_argument("--optimizers", default="bfgs", help="comma-separated; empty for none")
    ap.add_argument("--json", default=None)
    add_program_options(ap)
    args = ap.parse_args()
    apply_program_options(args)

    sim = seed_model(n_people=args.people, n_draws=args.draws)
    spec = dict(sim.spec)
    spec["estimation"] = {**spec["estimation"], "device": args.device, "precision": args.precision}
    t0 = time.perf_counter()
    model = gradfit.Model(spec, data=sim.data)
    setup_s = time.perf_counter() - t0
    theta = model.placement.vector(model._layout.start, model.dtype)
    arrays = model._arrays
    t0 = time.perf_counter()
    value, grad = jax.block_until_ready(model._vg(theta, arrays))
    compile_vg = time.perf_counter() - t0
    jax.block_until_ready(model._f(theta, arrays))
    out = {
        "device": model.placement.describe(),
        "device_kind": model.device.device_kind,
        "jax": jax.__version__,
        "python": platform.python_version(),
        "precision": args.precision,
        "people": model.n_individuals,
        "rows": model.n_observations,
        "draws": args.draws,
        "parameters": len(model.parameter_names),
        "setup_s": setup_s,
        "compile_value_and_grad_s": compile_vg,
        "schedule": args.schedule,
        "ll": float(value),
        "grad_abs_sum": float(np.abs(np.asarray(grad)).sum()),  # to check that settings agree
    }
    out["value_ms"], out["value_iqr_ms"] = (1e3 * x for x in timed(lambda: model._f(theta, arrays), args.repeat))
    out["value_and_grad_ms"], out["value_and_grad_iqr_ms"], out["value_and_grad_blocking_ms"] = (
        1e3 * x for x in timed_both(lambda: model._vg(theta, arrays), args.repeat)
    )
    fits = {}
    for opt in [o for o in args.optimizers.split(",") if o]:
        res = model.fit(optimizer=opt)
        fits[opt] = {
            "loglikelihood": res.loglikelihood,
            "converged": res.converged,
            "iterations": res.iterations,
            "estimate_s": res.timings["estimate_s"],
            "inference_s": res.timings["inference_s"],
            "fit_excluding_compile_s": res.timings["estimate_s"] + res.timings["inference_s"],
            "compile_s": res.timings["compile_s"],
        }
    out["fits"] = fits
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    print(
        f"device {out['device_kind']} ({out['device']}), jax {out['jax']}, {args.precision}, "
        f"N={out['people']} rows={out['rows']} R={args.draws} P={out['parameters']}"
    )
    print(f"{'quantity':<34}{'value':>14}")
    print(f"{'LL at start, sum |grad|':<34}{out['ll']:>14.6f} {out['grad_abs_sum']:.10e}")
    print(f"{'value (ms, median)':<34}{out['value_ms']:>14.3f}")
    print(f"{'value+grad (ms, median)':<34}{out['value_and_grad_ms']:>14.3f}")
    print(f"{'value+grad IQR (ms)':<34}{out['value_and_grad_iqr_ms']:>14.3f}")
    print(f"{'value+grad, blocking wait (ms)':<34}{out['value_and_grad_blocking_ms']:>14.3f}")
    print(f"{'compile value+grad (s)':<34}{compile_vg:>14.2f}")
    for opt, f in fits.items():
        print(f"{'fit ' + opt + ' LL':<34}{f['loglikelihood']:>14.4f}")
        print(f"{'fit ' + opt + ' iterations':<34}{f['iterations']:>14d}")
        print(f"{'fit ' + opt + ' converged':<34}{f['converged']!s:>14}")
        print(f"{'fit ' + opt + ' estimate+SEs (s)':<34}{f['fit_excluding_compile_s']:>14.3f}")
        print(f"{'fit ' + opt + ' compile (s)':<34}{f['compile_s']:>14.2f}")


if __name__ == "__main__":
    main()
