"""Opt-in benchmark: Biogeme's Optima hybrid choice models estimated end to end from Biogeme's start values.

    python benchmarks/bench_optima.py [--case h04|classic|classic_mc ...] [--optimizer bfgs,trust_bfgs]
                                      [--set KEY=VALUE ...] [--json FILE]

For each case and optimiser: the wall time from reading the spec to the standard errors (data loading, draws,
JAX compilation, optimisation, Hessian and sandwich), its parts, the iterations and the log-likelihood reached,
next to Biogeme's published log-likelihood. A short table is printed last.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax

import gradfit
from gradfit.io.overrides import apply_overrides
from gradfit.io.spec import read_spec

OPTIMA = Path(__file__).resolve().parents[1] / "examples" / "optima"
CASES = {  # spec file, Biogeme's published final log-likelihood
    "h04": ("h04.yaml", -11152.324),
    "classic": ("classic.yaml", -18384.2),
    "classic_mc": ("classic_mc.yaml", -18382.55),
}


def run(case: str, optimizer: str, overrides: list[str]) -> dict:
    file, published = CASES[case]
    t0 = time.perf_counter()
    spec = apply_overrides(read_spec(OPTIMA / file), overrides, "bench")
    model = gradfit.Model(spec)
    setup_s = time.perf_counter() - t0
    fit = model.fit(optimizer)
    total_s = time.perf_counter() - t0
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
    print("| case | integration | optimizer | device | total s | optimise s | iterations | LL | published |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['case']} | {r['integration']} | {r['optimizer']} | {r['device']} | {r['total_s']:.1f} | "
            f"{r['fit_estimate_s']:.1f} | {r['iterations']} | {r['loglikelihood']:.3f} | "
            f"{r['published_loglikelihood']} |"
        )


if __name__ == "__main__":
    main()
