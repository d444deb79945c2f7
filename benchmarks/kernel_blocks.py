"""Opt-in benchmark: the Pallas ordered-logit kernels (gradfit.kernels.ordered) against the XLA form, and the
kernels' block shapes, on the seed model (value and value+gradient, float64, one GPU).

    python benchmarks/kernel_blocks.py [SIZE ...]        # sizes as PEOPLExDRAWS, default 10000x1000 326x100

For each size: the XLA form, then the kernels at each (people, draws, warps) block shape; medians of 20 calls
after a warm-up, the first call (compilation) apart, and the largest difference of LL and gradient from XLA's.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

import jax
import numpy as np
from small_blocks import sync_ms  # benchmarks/ is on the path when run as a script

import gradfit
from gradfit.iclv.simulate import seed_model
from gradfit.kernels import _blocks

SHAPES = ((4, 64, 4), (4, 64, 2), (4, 64, 1), (8, 64, 2), (8, 32, 2), (8, 32, 1), (4, 128, 2), (2, 64, 1))
SHAPES += ((8, 64, 1), (2, 128, 1), (8, 64, 4), (16, 64, 4), (8, 128, 4), (16, 128, 4), (8, 256, 4))


def main() -> None:
    print(f"{jax.devices()[0].device_kind}, jax {jax.__version__}")
    print(f"{'size':<12}{'form':<14}{'v+g ms':>9}{'value ms':>10}{'first s':>9}{'LL diff':>10}{'grad rel':>10}")
    for size in sys.argv[1:] or ["10000x1000", "326x100"]:
        n, r = (int(x) for x in size.split("x"))
        sim = seed_model(n_people=n, n_draws=r)
        model = gradfit.Model(sim.spec, data=sim.data)
        theta, arrays = model._theta(None), model._arrays
        xla = model._likelihood
        kernel = replace(xla, indicators=tuple(replace(g, kernel="gpu") for g in xla.indicators))
        reference = None
        for shape in (None, *SHAPES):
            lik, name = (xla, "xla") if shape is None else (kernel, "k{}x{}w{}".format(*shape))
            if shape is not None:
                _blocks.override = _blocks.Block(*shape)
            vg, f = jax.jit(jax.value_and_grad(lik.total)), jax.jit(lik.total)
            t0 = time.perf_counter()
            value, grad = jax.block_until_ready(vg(theta, arrays))
            first = time.perf_counter() - t0
            value, grad = float(value), np.asarray(grad)
            reference = reference or (value, grad)
            diff = abs(value - reference[0])
            rel = np.max(np.abs(grad - reference[1])) / np.max(np.abs(reference[1]))
            ms = sync_ms(lambda vg=vg, t=theta, a=arrays: vg(t, a), 20)
            ms_value = sync_ms(lambda f=f, t=theta, a=arrays: f(t, a), 20)
            print(f"{size:<12}{name:<14}{ms:>9.3f}{ms_value:>10.3f}{first:>9.1f}{diff:>10.1e}{rel:>10.1e}", flush=True)


if __name__ == "__main__":
    main()
