"""Opt-in benchmark: what one optimiser step's value+gradient costs on the host side, piece by piece.

    python benchmarks/step_cost.py [--people 326] [--draws 100] [--repeat 1000]

The optimisers work on numpy vectors: each step puts the parameters on the device, runs the compiled
value+gradient, and brings the value and gradient back. Times (medians of synchronised calls): the compiled
call alone (block_until_ready), the parameters' transfer and the call with its results' transfer by the ways
JAX offers (a result once brought to the host stays cached there, so each row makes new ones), and
`Model.problem().value_and_grad`, the whole step as the optimisers see it.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from small_blocks import sync_ms  # benchmarks/ is on the path when run as a script

import gradfit
from gradfit.iclv.simulate import seed_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=326)
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=1000)
    args = ap.parse_args()
    sim = seed_model(n_people=args.people, n_draws=args.draws)
    model = gradfit.Model(sim.spec, data=sim.data)
    model.compile(("value_and_grad",))
    x = np.asarray(model._layout.start, dtype=float)
    theta, arrays = model._theta(None), model._arrays
    sharding = model.placement._shardings[1]
    jax.block_until_ready(model._vg(theta, arrays))
    step = model.problem().value_and_grad
    rows = {
        "compiled call, block_until_ready": lambda: jax.block_until_ready(model._vg(theta, arrays)),
        "to device: jnp.asarray + device_put": lambda: jax.block_until_ready(
            jax.device_put(jnp.asarray(x, model.dtype), sharding)
        ),
        "to device: device_put(numpy)": lambda: jax.block_until_ready(jax.device_put(x, sharding)),
        "call + float(v), np.asarray(g)": lambda: [(float(v), np.asarray(g)) for v, g in [model._vg(theta, arrays)]],
        "call + jax.device_get": lambda: jax.device_get(model._vg(theta, arrays)),
        "Problem.value_and_grad (the optimiser's step)": lambda: step(x),
    }
    print(f"{model.device.device_kind}, jax {jax.__version__}, {args.people} x {args.draws}")
    for _ in range(2):
        for name, fn in rows.items():
            fn()
            print(f"{name:<48}{sync_ms(fn, args.repeat):8.4f} ms")


if __name__ == "__main__":
    main()
