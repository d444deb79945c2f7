"""Opt-in benchmark: the Pallas kernels' block shapes against problem size, synchronised value+gradient.

    python benchmarks/small_blocks.py [SIZE ...]      # PEOPLExDRAWS, default 326x100 1000x200 2000x500 10000x1000

For each size: the XLA form and both kernels at several (people, draws, warps) blocks, each compiled once and
then timed in interleaved rounds (so drift on a shared machine hits all alike): the median over rounds of each
round's median of synchronised calls, and the throughput of back-to-back calls. Also the latency of a trivial
jitted call, the floor under any synchronised timing.
"""

from __future__ import annotations

import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import gradfit
from gradfit.iclv.simulate import seed_model
from gradfit.kernels import _blocks

SHAPES = [_blocks.Block(2, 128, 1), _blocks.Block(1, 32, 1), _blocks.Block(1, 64, 1), _blocks.Block(2, 64, 1)]
SHAPES += [_blocks.Block(2, 32, 1), _blocks.Block(1, 32, 2), _blocks.Block(1, 128, 1)]


def sync_ms(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        samples.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(samples)


def pipelined_ms(fn, calls: int) -> float:
    t0 = time.perf_counter()
    out = None
    for _ in range(calls):
        out = fn()
    jax.block_until_ready(out)
    return 1e3 * (time.perf_counter() - t0) / calls


def main() -> None:
    x = jnp.ones(16)
    trivial = jax.jit(lambda x: x + 1)
    jax.block_until_ready(trivial(x))
    print(f"{jax.devices()[0].device_kind}, jax {jax.__version__}")
    print(f"trivial jitted call: synchronised {sync_ms(lambda: trivial(x), 2000):.4f} ms")
    for size in sys.argv[1:] or ["326x100", "1000x200", "2000x500", "10000x1000"]:
        n, r = (int(v) for v in size.split("x"))
        sim = seed_model(n_people=n, n_draws=r)
        model = gradfit.Model(sim.spec, data=sim.data)
        theta, arrays = model._theta(None), model._arrays
        xla = model._likelihood
        fast = xla.with_kernels("gpu", jnp.float64)
        fns, reference = {}, None
        for shape in (None, *SHAPES):
            _blocks.override = shape
            vg = jax.jit(jax.value_and_grad((xla if shape is None else fast).total))
            value, grad = jax.block_until_ready(vg(theta, arrays))
            value, grad = float(value), np.asarray(grad)
            reference = reference or (value, grad)
            assert abs(value - reference[0]) <= 1e-9 * abs(value), (shape, value, reference[0])
            assert np.max(np.abs(grad - reference[1])) <= 1e-9 * np.max(np.abs(reference[1])), shape
            name = "xla" if shape is None else "{}x{}w{}".format(*shape)
            fns[name] = lambda vg=vg, t=theta, a=arrays: vg(t, a)
        _blocks.override = None
        repeat = max(20, min(300, int(30 / (1 + n * r / 1e6))))
        rounds = {name: [] for name in fns}
        for _ in range(5):
            for name, fn in fns.items():
                rounds[name].append(sync_ms(fn, repeat))
        chosen = "{}x{}w{}".format(*_blocks.block_for(n, r))
        for name, fn in fns.items():
            mark = "  <- chosen" if name == chosen else ""
            pipe = pipelined_ms(fn, repeat)
            print(
                f"{size:<11} {name:<9} sync {statistics.median(rounds[name]):8.4f} ms "
                f"(rounds {min(rounds[name]):.4f}-{max(rounds[name]):.4f})  back-to-back {pipe:8.4f} ms{mark}",
                flush=True,
            )


if __name__ == "__main__":
    main()
