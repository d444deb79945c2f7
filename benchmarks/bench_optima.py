"""Opt-in benchmark: Biogeme's Optima hybrid choice models estimated end to end from Biogeme's start values.

    python benchmarks/bench_optima.py [--case h04|classic|classic_mc ...] [--optimizer bfgs,trust_bfgs]
                                      [--set KEY=VALUE ...] [--json FILE]

For each case and optimiser: the wall time from reading the spec to the standard errors (data loading, draws,
JAX compilation, optimisation, Hessian and sandwich), its parts, the iterations and the log-likelihood reached,
next to Biogeme's published log-likelihood, and the largest distance between gradfit's estimates and Biogeme's
published ones in gradfit's standard errors. A short table is printed last.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import jax

import gradfit
from gradfit.io.overrides import apply_overrides
from gradfit.io.spec import read_spec

OPTIMA = Path(__file__).resolve().parents[1] / "examples" / "optima"
CASES = {  # spec file, Biogeme's published final log-likelihood, published estimates
    "h04": ("h04.yaml", -11152.324, "h04_published.json"),
    "classic": ("classic.yaml", -18384.2, "classic_published.json"),
    "classic_mc": ("classic_mc.yaml", -18382.55, "classic_mc_published.json"),
}


def published_estimates(file: str) -> dict[str, float]:
    """Biogeme's published estimates in the spec's parameterisation (h04: sigma = exp(Biogeme's sigma_log))."""
    raw = json.loads((OPTIMA / file).read_text(encoding="utf-8"))
    values = raw.get("estimates", raw)
    out = {}
    for name, value in values.items():
        if isinstance(value, int | float) and name != "loglikelihood":
            log_sigma = name.endswith("_sigma_log")
            out[name.removesuffix("_log") if log_sigma else name] = math.exp(value) if log_sigma else value
    return out


def distance_to_published(fit, published: dict[str, float]) -> tuple[float, str]:
    """The largest |estimate - published| in standard errors, and which parameter."""
    est = fit.estimates
    gaps = {n: abs(est.loc[n, "value"] - published[n]) / est.loc[n, "std_err"] for n in est.index if n in published}
    worst = max(gaps, key=gaps.get)
    return gaps[worst], worst


def run(case: str, optimizer: str, overrides: list[str]) -> dict:
    file, published, estimates_file = CASES[case]
    t0 = time.perf_counter()
    spec = apply_overrides(read_spec(OPTIMA / file), overrides, "bench")
    model = gradfit.Model(spec)
    setup_s = time.perf_counter() - t0
    fit = model.fit(optimizer)
    total_s = time.perf_counter() - t0
    gap, worst = distance_to_published(fit, published_estimates(estimates_file))
    return {
        "case": case,
        "optimizer": optimizer,
        "overrides": overrides,
        "integration": f"{spec.integration.type} {spec.integration.n}",
        "device": model.placement.describe(),
        "total_s": total_s,
        "setup_s": setup_s,
        **{f"fit_{k}": v for k, v in fit.timings.items()},
        "iterations": fit.iterations,
        "converged": fit.converged,
        "loglikelihood": fit.loglikelihood,
        "published_loglikelihood": published,
        "max_gap_in_se": gap,
        "max_gap_parameter": worst,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", action="append", choices=sorted(CASES), help="repeatable; default: all")
    ap.add_argument("--optimizer", default="trust_bfgs", help="comma-separated")
    ap.add_argument("--set", action="append", default=[], dest="overrides", help="KEY=VALUE for every case")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = []
    for case in args.case or sorted(CASES):
        for optimizer in args.optimizer.split(","):
            row = run(case, optimizer, args.overrides)
            rows.append(row)
            print(json.dumps(row), flush=True)
    meta = {"jax": jax.__version__, "gradfit": gradfit.__version__, "python": platform.python_version()}
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2), encoding="utf-8")
    print(f"\n{meta}\n")
    print("| case | integration | optimizer | device | total s | optimise s | iterations | LL | published | gap/SE |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['case']} | {r['integration']} | {r['optimizer']} | {r['device']} | {r['total_s']:.1f} | "
            f"{r['fit_estimate_s']:.1f} | {r['iterations']} | {r['loglikelihood']:.3f} | "
            f"{r['published_loglikelihood']} | {r['max_gap_in_se']:.2f} ({r['max_gap_parameter']}) |"
        )


if __name__ == "__main__":
    main()
