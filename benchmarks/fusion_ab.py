"""A/B of two ways to write the seed model's per-draw products (issue 6), value+gradient on one device.

    python benchmarks/fusion_ab.py [--sizes 326x100,10000x1000] [--precisions float64,mixed] [--repeat 20]

"dot": indicator means eta @ loadings.T and the panel-logit denominators einsum("nrj,ntj->nrt") as matrix
products. "fused": as sums of broadcast products, elementwise, so that XLA can fuse them with their
consumers instead of writing people x draws x indicators (or rows) arrays to memory. Likelihood.for_device
picks per platform and precision from these figures (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import jax

import gradfit
from gradfit.iclv.simulate import seed_model


def variant(lik, loadings: bool, products: bool):
    groups = tuple(replace(g, fused=loadings) for g in lik.indicators)
    return replace(lik, indicators=groups, choice=replace(lik.choice, fused=products))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="326x100,10000x1000")
    ap.add_argument("--precisions", default="float64,mixed")
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    rows = []
    for size in args.sizes.split(","):
        n, r = (int(x) for x in size.split("x"))
        sim = seed_model(n_people=n, n_draws=r)
        base = gradfit.Model(sim.spec, data=sim.data)
        for precision in args.precisions.split(","):
            est = base.spec.estimation.model_copy(update={"precision": precision})
            model = base.variant(base.spec.model_copy(update={"estimation": est}))
            theta, arrays = model._theta(None), model._arrays
            for loadings, products in ((False, False), (True, False), (False, True), (True, True)):
                vg = jax.jit(jax.value_and_grad(variant(model._built.likelihood, loadings, products).total))
                jax.block_until_ready(vg(theta, arrays))
                ts = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    jax.block_until_ready(vg(theta, arrays))
                    ts.append(time.perf_counter() - t0)
                rows.append((size, precision, loadings, products, 1e3 * statistics.median(ts)))
    print(f"{jax.devices()[0].device_kind}, jax {jax.__version__}")
    print(f"{'size':<12}{'precision':<10}{'loadings':<10}{'products':<10}{'v+g ms':>9}")
    for size, precision, loadings, products, ms in rows:
        lo, pr = ("fused" if x else "dot" for x in (loadings, products))
        print(f"{size:<12}{precision:<10}{lo:<10}{pr:<10}{ms:>9.3f}")


if __name__ == "__main__":
    main()
