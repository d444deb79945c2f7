"""Opt-in: how a seed-size value+gradient's time moves while one process runs, against a call that does nothing.

    python benchmarks/phases.py [--device gpu] [--rounds 40] [--calls 200] [--people 326 --draws 100]

Each round times `--calls` synchronised calls of a trivial compiled program (a sum and an add on the
parameter vector: what any call costs on this machine, the floor) and then as many value+gradient calls, and
prints both medians and their difference. On the H100 VM the value+gradient's median moves by a third within
one process from round to round, with the GPU's clock steady: comparing code needs calls interleaved in one
process (ab_seed.py), and a single process's median says little about a machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
from bench_seed import timed  # (a script's folder is on sys.path)

import gradfit
from gradfit.iclv.simulate import seed_model
from gradfit.runtime import ready


def median_ms(fn, calls: int) -> float:
    """Median milliseconds of `calls` synchronised calls, waited for as gradfit's optimisers wait."""
    return 1e3 * timed(fn, calls)[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="gpu", choices=["cpu", "gpu"])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--people", type=int, default=326)
    ap.add_argument("--draws", type=int, default=100)
    args = ap.parse_args()

    sim = seed_model(n_people=args.people, n_draws=args.draws)
    spec = dict(sim.spec)
    spec["estimation"] = {**spec["estimation"], "device": args.device, "precision": "float64"}
    model = gradfit.Model(spec, data=sim.data)
    theta = model.placement.vector(model._layout.start, model.dtype)
    arrays = model._arrays
    trivial = jax.jit(lambda t: (jnp.sum(t), t + 1.0)).lower(theta).compile()
    ready(trivial(theta))
    ready(model._vg(theta, arrays))  # compiles
    print(f"device {model.placement.describe()}, jax {jax.__version__}; medians of {args.calls} calls (ms)")
    print(f"{'s':>6} {'trivial':>8} {'value+grad':>11} {'difference':>11}")
    start = time.perf_counter()
    floor, full = [], []
    for _ in range(args.rounds):
        floor.append(median_ms(lambda: trivial(theta), args.calls))
        full.append(median_ms(lambda: model._vg(theta, arrays), args.calls))
        print(f"{time.perf_counter() - start:6.2f} {floor[-1]:8.3f} {full[-1]:11.3f} {full[-1] - floor[-1]:11.3f}")
    diff = [b - a for a, b in zip(floor, full, strict=True)]
    for name, xs in (("trivial", floor), ("value+grad", full), ("difference", diff)):
        print(f"{name:<11} min {min(xs):.3f}  median {statistics.median(xs):.3f}  max {max(xs):.3f}")


if __name__ == "__main__":
    main()
