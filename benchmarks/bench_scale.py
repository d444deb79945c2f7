"""Opt-in benchmark for issue 6: value+gradient at scale, precisions, chunks, devices, peak memory.

    python benchmarks/bench_scale.py [--people 10000] [--draws 1000] [--precisions float64,float32,mixed]
        [--devices 1,all] [--large 1000000] [--fit-people 2000] [--fit-draws 200] [--repeat 20] [--json FILE]

The model is the seed model (gradfit.iclv.simulate.seed_model: 18 situations, 3 alternatives, 5 latent
variables with 6 ordered-logit indicators each, 197 parameters) at the given size, with MLHS draws. Every
timing is a median after a warm-up call, synchronised with block_until_ready; compilation is timed apart.

- "size" rows: value+gradient at --people x --draws for each precision, the error of LL and gradient against
  float64 on the first device count at the start values, on each device count of --devices.
- "fit" rows (--fit-people > 0): a whole fit per precision at a smaller size, and the largest shift of an
  estimate from the float64 one, in float64 standard errors.
- "large" row (--large > 0): --large people x --draws draws with draws regenerated on the device
  (store_draws: false) and automatic chunks; value+gradient time and the device's peak memory, on each
  device count of --devices (LL and gradient errors against the first count).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import jax
import numpy as np
from bench_seed import add_program_options, apply_program_options, timed  # (a script's folder is on sys.path)

import gradfit
from gradfit.iclv.simulate import seed_model


def peak_bytes(model) -> float | None:
    stats = [d.memory_stats() or {} for d in model.placement.devices]
    peaks = [s.get("peak_bytes_in_use") for s in stats]
    return None if None in peaks else float(max(peaks))


def measure(model, repeat: int) -> dict:
    theta = model._theta(None)
    t0 = time.perf_counter()
    value, grad = jax.block_until_ready(model._vg(theta, model._arrays))
    compile_s = time.perf_counter() - t0
    vg, iqr = timed(lambda: model._vg(theta, model._arrays), repeat)
    return {
        "devices": len(model.placement.devices),
        "chunks": model.chunks.count,
        "precision": model.spec.estimation.precision,
        "compile_and_first_s": compile_s,
        "value_and_grad_ms": 1e3 * vg,
        "iqr_ms": 1e3 * iqr,
        "ll": float(value),
        "grad": np.asarray(grad, dtype=float),
        "peak_gb": (lambda b: None if b is None else b / 1e9)(peak_bytes(model)),
    }


def spec_for(sim, **estimation) -> dict:
    spec = dict(sim.spec)
    spec["integration"] = {"type": "mlhs", "n": sim.spec["integration"]["n"], "seed": 1}
    spec["estimation"] = {**spec["estimation"], **estimation}
    return spec


def device_counts(text: str) -> list:
    return [c if c == "all" else int(c) for c in text.split(",") if c]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=10_000)
    ap.add_argument("--draws", type=int, default=1_000)
    ap.add_argument("--precisions", default="float64,float32,mixed")
    ap.add_argument("--devices", default="1")
    ap.add_argument("--large", type=int, default=0)
    ap.add_argument("--fit-people", type=int, default=0)
    ap.add_argument("--fit-draws", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--json", default=None)
    add_program_options(ap)
    args = ap.parse_args()
    apply_program_options(args)
    precisions = [p for p in args.precisions.split(",") if p]
    counts = device_counts(args.devices)
    out = {
        "device_kind": jax.devices()[0].device_kind,
        "visible_devices": len(jax.devices()),
        "jax": jax.__version__,
        "python": platform.python_version(),
        "size": [],
        "fit": [],
        "large": [],
    }

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    sim = seed_model(n_people=args.people, n_draws=args.draws)
    base = gradfit.Model(spec_for(sim, precision="float64", devices=counts[0]), data=sim.data)
    log(f"built {args.people} x {args.draws} in {time.perf_counter() - t0:.1f} s")
    reference = None  # float64 on the first device count: other counts and precisions are compared with it
    for count in counts:
        for precision in precisions:
            model = base.variant(
                base.spec.model_copy(
                    update={
                        "estimation": base.spec.estimation.model_copy(update={"precision": precision, "devices": count})
                    }
                )
            )
            row = measure(model, args.repeat)
            g = row.pop("grad")
            if reference is None and precision == "float64":
                reference = (row["ll"], g)
            if reference is not None:
                row["ll_rel_error"] = abs(row["ll"] - reference[0]) / abs(reference[0])
                row["grad_max_rel_error"] = float(np.max(np.abs(g - reference[1])) / np.max(np.abs(reference[1])))
            out["size"].append({"people": args.people, "draws": args.draws, **row})
            log(json.dumps(out["size"][-1]))
            del model

    if args.fit_people:
        sim = seed_model(n_people=args.fit_people, n_draws=args.fit_draws)
        fits = {}
        for precision in precisions:
            model = gradfit.Model(spec_for(sim, precision=precision, devices=counts[0]), data=sim.data)
            res = model.fit()
            fits[precision] = res
            row = {
                "people": args.fit_people,
                "draws": args.fit_draws,
                "precision": precision,
                "ll": res.loglikelihood,
                "converged": res.converged,
                "iterations": res.iterations,
                "estimate_s": res.timings["estimate_s"],
            }
            if "float64" in fits:
                ref = fits["float64"]
                se = ref.estimates["std_err"].to_numpy()
                row["ll_diff"] = res.loglikelihood - ref.loglikelihood
                row["max_shift_in_se"] = float(np.nanmax(np.abs(res.theta - ref.theta) / se))
            out["fit"].append(row)
            log(json.dumps(row))

    if args.large:
        t0 = time.perf_counter()
        sim = seed_model(n_people=args.large, n_draws=args.draws)
        spec = spec_for(sim, precision="float64", devices=counts[0])
        spec["integration"]["store_draws"] = False
        simulate_s = time.perf_counter() - t0
        model = gradfit.Model(spec, data=sim.data)
        del sim
        log(f"large: simulated in {simulate_s:.0f} s, built in {model._setup_s:.0f} s")
        for count in counts:
            if count != counts[0]:
                est = model.spec.estimation.model_copy(update={"devices": count})
                model = model.variant(model.spec.model_copy(update={"estimation": est}))
            row = measure(model, max(3, args.repeat // 5))
            g = row.pop("grad")
            if not out["large"]:
                large_ref = (row["ll"], g)
            else:
                row["ll_rel_error"] = abs(row["ll"] - large_ref[0]) / abs(large_ref[0])
                row["grad_max_rel_error"] = float(np.max(np.abs(g - large_ref[1])) / np.max(np.abs(large_ref[1])))
            out["large"].append({"people": args.large, "draws": args.draws, "setup_s": model._setup_s, **row})
            log(json.dumps(out["large"][-1]))

    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    print(f"{out['device_kind']}  (jax {out['jax']})")
    print(
        f"{'case':<22}{'prec':<9}{'dev':>4}{'chunks':>7}{'v+g ms':>10}{'iqr':>7}"
        f"{'LL err':>10}{'grad err':>10}{'peak GB':>9}"
    )
    for kind in ("size", "large"):
        for r in out[kind]:
            case = f"{kind} {r['people']}x{r['draws']}"
            peak = "" if r["peak_gb"] is None else f"{r['peak_gb']:.1f}"
            print(
                f"{case:<22}{r['precision']:<9}{r['devices']:>4}{r['chunks']:>7}{r['value_and_grad_ms']:>10.2f}"
                f"{r['iqr_ms']:>7.2f}{r.get('ll_rel_error', float('nan')):>10.1e}"
                f"{r.get('grad_max_rel_error', float('nan')):>10.1e}{peak:>9}"
            )
    for r in out["fit"]:
        print(
            f"fit {r['people']}x{r['draws']} {r['precision']:<8} LL {r['ll']:.4f} it {r['iterations']} "
            f"{r['estimate_s']:.1f} s  shift {r.get('max_shift_in_se', float('nan')):.3f} SE"
        )


if __name__ == "__main__":
    main()
