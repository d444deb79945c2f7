"""Opt-in: what a kernel costs inside one compiled call on this GPU, by how many there are and how they depend.

    python benchmarks/graph_cost.py [--repeat 1000]

Compiles a chain of k dependent small steps (each a reduction feeding the next: k + 1 kernels) and k
independent reductions (which XLA packs into fewer kernels; the kernels column says how many), and prints,
per k, the call's return time (the host's share: dispatch and launching the CUDA graph) and its synchronised
time (medians of --repeat calls, three rounds). On the H100 VM (RESULTS.md, eleventh session) each kernel of
the chain added about 2.5 us, and launching added about 0.3-0.5 us per kernel: a seed-size call is bound by
its longest chain of dependent kernels more than by their number.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from gradfit.runtime import ready

jax.config.update("jax_enable_x64", True)


def chain(k: int):
    def f(x):
        for _ in range(k):  # each step needs the previous one's sum: one kernel after another
            x = x * 0.999 + jnp.sum(x) * 1e-6
        return x

    return f


def independent(k: int):
    def f(x):
        return jnp.stack([jnp.sum(x * (1.0 + i)) for i in range(k)])

    return f


def median_us(fn, x, repeat: int) -> tuple[float, float]:
    """(return, synchronised) microseconds, medians."""
    back, done = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        y = fn(x)
        t1 = time.perf_counter()
        ready(y)
        done.append(time.perf_counter() - t0)
        back.append(t1 - t0)
        del y
    return 1e6 * statistics.median(back), 1e6 * statistics.median(done)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=1000)
    args = ap.parse_args()
    x = jax.device_put(np.linspace(0.0, 1.0, 4096))
    print(f"{jax.devices()[0].device_kind}, jax {jax.__version__}")
    print(f"{'form':<12}{'k':>5}{'kernels':>9}{'return us':>11}{'done us':>10}")
    for name, make in (("chain", chain), ("independent", independent)):
        for k in (1, 8, 16, 32, 64, 128):
            fn = jax.jit(make(k)).lower(x).compile()
            hlo = fn.as_text()
            kernels = hlo.count(" fusion(") + hlo.count("custom-call(")
            ready(fn(x))
            rounds = [median_us(fn, x, args.repeat) for _ in range(3)]
            back = statistics.median(r[0] for r in rounds)
            done = statistics.median(r[1] for r in rounds)
            print(f"{name:<12}{k:>5}{kernels:>9}{back:>11.1f}{done:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
