"""Cost model of one value+gradient of the issue-6 scale model (seed_model at N = 10,000 people, R = 1,000 draws).

    python benchmarks/cost_model.py [--device cpu|gpu] [--precision float64|float32] [--full] [--dump DIR]

1. XLA's count: compile (never run) the value (model._f) and the value+gradient (model._vg) at small sizes, read
   cost_analysis() (flops, transcendentals, bytes accessed), fit c0 + cN N + cR R + cNR N R over a 3 x 2 grid
   (the largest relative residual checks linearity) and extrapolate to the full size. Two grids: below and
   above build.REMAT_ELEMENTS (people x draws x 54 > 4e6), where the backward pass recomputes each component
   (jax.checkpoint); the full size is in the second regime. --full also compiles the full size itself, in one
   chunk (a scan body would be counted once); bytes depend on the backend's fusion, so run it on the GPU.
2. An analytic minimum per person x draw: transcendentals, other flops and divisions of one fused pass
   (see benchmarks/NOTES.md, "Scale model").
3. Time floors on an H100 SXM: max(compute, memory), compute at the vector rates (nothing here is a matmul
   large enough for tensor cores), a transcendental and a division costed in flops of their software sequences.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

N_FULL, R_FULL = 10_000, 1_000
GRIDS = {"no remat": ((100, 200, 300), (100, 200)), "remat": ((400, 800, 1200), (200, 400))}
H100 = {"float64": 34e12, "float32": 67e12}  # FP64 / FP32 vector (non-tensor) flop/s, FMA = 2 flops
HBM = 3.35e12  # bytes/s
# flops per software transcendental (exp/log/log1p/expm1) and per division. float64: libdevice's exp is range
# reduction + an ~11-term Horner polynomial + scaling (~25-30 flops counting FMA as 2), log/log1p ~30-40, and
# no FP64 special-function unit exists; division is rcp + Newton steps (~10). float32: exp is one MUFU.EX2 plus
# a few FMAs, logf a short polynomial; ~10 and ~4 flop-equivalents.
TRANSC_FLOPS = {"float64": 30.0, "float32": 10.0}
DIV_FLOPS = {"float64": 10.0, "float32": 4.0}


def build(n: int, r: int, device: str, precision: str):
    import gradfit
    from gradfit.iclv.simulate import seed_model

    sim = seed_model(n_people=n, n_draws=r)
    spec = dict(sim.spec)
    est = {**spec["estimation"], "device": device, "precision": precision}
    try:  # one chunk: cost_analysis counts a scan body once
        model = gradfit.Model({**spec, "estimation": {**est, "chunk_size": n}}, data=sim.data)
    except Exception:  # a version without chunk_size
        model = gradfit.Model({**spec, "estimation": est}, data=sim.data)
    return model, model.placement.vector(model._layout.start, model.dtype)


def costs(n: int, r: int, device: str, precision: str, dump: str | None = None) -> dict:
    model, theta = build(n, r, device, precision)
    lik = getattr(getattr(model, "_built", None), "likelihood", None)
    out = {"remat": getattr(lik, "remat", "?")}
    out["chunks"] = getattr(getattr(model, "chunks", None), "count", 1)
    for name, fn in (("value", model._f), ("value+grad", model._vg.jitted)):
        compiled = fn.lower(theta, model._arrays).compile()
        ca = compiled.cost_analysis()
        ca = ca[0] if isinstance(ca, list | tuple) else ca
        out[name] = np.array([ca.get("flops", 0.0), ca.get("transcendentals", 0.0), ca.get("bytes accessed", 0.0)])
        mem = compiled.memory_analysis()
        out[name + " temp"] = getattr(mem, "temp_size_in_bytes", float("nan"))
        if dump:
            os.makedirs(dump, exist_ok=True)
            with open(os.path.join(dump, f"{name.replace('+', '_')}_{n}x{r}_{precision}.hlo.txt"), "w") as fh:
                fh.write(compiled.as_text())
    leaves = [a for k, v in model._arrays.items() if k != "draws" for a in _leaves(v)]
    out["data bytes"] = sum(a.nbytes for a in leaves)
    return out


def _leaves(tree):
    import jax

    return jax.tree_util.tree_leaves(tree)


def fit(points: list[tuple[int, int, np.ndarray]]) -> tuple[np.ndarray, float]:
    """Least squares of c0 + cN N + cR R + cNR N R; returns the coefficients (4, 3) and the worst residual."""
    a = np.array([[1.0, n, r, n * r] for n, r, _ in points])
    y = np.array([c for _, _, c in points])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return coef, float(np.max(np.abs(a @ coef - y) / y))


def analytic(k=30, t=18, j=3, lv=5, tri=True) -> dict[str, dict[str, float]]:
    """Per person x draw, one fused pass each way (partials rebuilt from the forward's exponentials).

    Forward: eta = mean + Lz (lower-triangular), mu_k = intercept + lambda_k eta (one loading per indicator),
    per indicator a, b, exp(-|a|), exp(-|b|), log((1+e_a)(1+e_b)); choice: J exp of the latent utility part,
    s_t = sum_j b_j a_tj, T logs; the draw's weight w = exp(ll - LSE_n) (one exp).
    Backward: F(a), F(-b) (a division each), 12 flops of accumulation per indicator (thresholds, scale,
    intercept, loading, d eta); choice 1/s_t, d b and d a (2 TJ each), d eta and d C (2 L J each).
    One pass needs the weights before the gradient: an online (flash-attention-like) rescaling of per-person
    accumulators; '2 passes' instead recomputes the forward once the log-sum-exp is known.
    'reformulated': exp(-|b|) from exp(-|a|) times a per-response constant exp(+-(hi - lo)/sigma) (a, b share
    mu), and one log of the product of the 30 factors (each in [1, 4]: <= 2^60); the rest as above.
    """
    chol = lv * (lv + 1) if tri else 2 * lv * lv
    fwd = chol + lv + 2 + 2 * k + 14 * k + (2 * lv * j + 4 * j + 2 * t * j + t) + 4
    bwd = 1 + 14 * k + (4 * t * j + 3 * j + 4 * lv * j) + chol + lv + 2
    as_coded = {"transc": 3 * k + j + t + 1, "flops": fwd + bwd, "div": 2 * k + t}
    two_pass = {"transc": 2 * (3 * k + j + t) + 1, "flops": 2 * fwd + bwd, "div": 2 * k + t}
    reform = {"transc": k + 1 + j + t + 1, "flops": fwd + bwd + 2 * k, "div": 2 * k + t}
    return {"fused, as formulated": as_coded, "fused, 2 passes": two_pass, "fused, reformulated": reform}


def floor_ms(flops: float, transc: float, div: float, nbytes: float, precision: str) -> tuple[float, float]:
    work = flops + transc * TRANSC_FLOPS[precision] + div * DIV_FLOPS[precision]
    return 1e3 * work / H100[precision], 1e3 * nbytes / HBM


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    ap.add_argument("--precision", default="float64", choices=["float64", "float32"])
    ap.add_argument("--full", action="store_true", help="also compile N = 10,000, R = 1,000 itself")
    ap.add_argument("--dump", default=None, help="with --full: write its compiled HLO here")
    args = ap.parse_args()
    os.environ.setdefault("GRADFIT_CPU_DEVICES", "1")
    os.environ.setdefault("GRADFIT_COMPILATION_CACHE", "0")
    nr = N_FULL * R_FULL
    width = 8 if args.precision == "float64" else 4
    print(f"device {args.device}, {args.precision}; per person x draw (/nr) and extrapolated to N x R = {nr:.0e}")
    print(
        f"{'regime':9} {'function':10} {'flops/nr':>9} {'transc/nr':>9} {'bytes/nr':>9} {'fit err':>8} "
        f"{'flops':>9} {'transc':>9} {'bytes':>9}"
    )
    rows, data_per_person = {}, 0.0
    for regime, (ns, rs) in GRIDS.items():
        pts = [(n, r, costs(n, r, args.device, args.precision)) for n in ns for r in rs]
        data_per_person = pts[-1][2]["data bytes"] / ns[-1]
        flags = {(p[2]["remat"], p[2]["chunks"]) for p in pts}
        for name in ("value", "value+grad"):
            coef, err = fit([(n, r, c[name]) for n, r, c in pts])
            full = coef.T @ np.array([1.0, N_FULL, R_FULL, nr])
            rows[(regime, name)] = full
            print(
                f"{regime:9} {name:10} {coef[3][0]:9.0f} {coef[3][1]:9.1f} {coef[3][2]:9.0f} {err:8.1e} "
                f"{full[0]:9.2e} {full[1]:9.2e} {full[2]:9.2e}"
            )
        print(f"          (remat, chunks) at these sizes: {sorted(flags, key=str)}")
    if args.full:
        c = costs(N_FULL, R_FULL, args.device, args.precision, args.dump)
        for name in ("value", "value+grad"):
            rows[("full size", name)] = c[name]
            f = c[name] / nr
            print(
                f"{'full':9} {name:10} {f[0]:9.0f} {f[1]:9.1f} {f[2]:9.0f} {'-':>8} "
                f"{c[name][0]:9.2e} {c[name][1]:9.2e} {c[name][2]:9.2e}  temp {c[name + ' temp']:.2e} B"
            )
        print(f"          remat {c['remat']}, chunks {c['chunks']}")

    draws = nr * 5 * width
    data = data_per_person * N_FULL
    print(
        f"\nminimum bytes: draws {draws:.2e} (0 if generated in the kernel), data {data:.2e}, gradient ~1.6e3;"
        f" one (N, R, 30) array {nr * 30 * width:.2e}, one (N, R) array {nr * width:.2e}"
    )
    print(
        f"\nH100 SXM floors, {args.precision}: transcendental = {TRANSC_FLOPS[args.precision]:.0f} flops, "
        f"division = {DIV_FLOPS[args.precision]:.0f}; XLA's flops count a division as 1"
    )
    print(f"{'source':38} {'transc/nr':>9} {'flops/nr':>9} {'GFLOP':>7} {'GB':>7} {'compute ms':>10} {'memory ms':>9}")
    for (regime, name), (fl, tr, by) in rows.items():
        if name == "value+grad":
            comp, mem = floor_ms(fl, tr, 0.0, by, args.precision)
            work = (fl + tr * TRANSC_FLOPS[args.precision]) / 1e9
            print(
                f"{'XLA ' + regime:38} {tr / nr:9.1f} {fl / nr:9.0f} {work:7.1f} {by / 1e9:7.1f} "
                f"{comp:10.2f} {mem:9.2f}"
            )
    for tier, a in analytic().items():
        for stored in (True, False):
            by = data + (draws if stored else 0.0)
            if "2 passes" in tier:  # the draws read twice, ll (N, R) written and read back
                by += (draws if stored else 0.0) + 2 * nr * width
            comp, mem = floor_ms(nr * a["flops"], nr * a["transc"], nr * a["div"], by, args.precision)
            work = nr * (a["flops"] + a["transc"] * TRANSC_FLOPS[args.precision] + a["div"] * DIV_FLOPS[args.precision])
            label = f"{tier}, {'stored' if stored else 'generated'} draws"
            print(
                f"{label:38} {a['transc']:9.0f} {a['flops']:9.0f} {work / 1e9:7.1f} {by / 1e9:7.2f} "
                f"{comp:10.2f} {mem:9.2f}"
            )
    lo, hi = (20.0, 40.0) if args.precision == "float64" else (5.0, 20.0)
    a = analytic()["fused, as formulated"]
    span = [
        1e3 * nr * (a["flops"] + a["transc"] * x + a["div"] * DIV_FLOPS[args.precision]) / H100[args.precision]
        for x in (lo, hi)
    ]
    print(f"(fused, as formulated, with {lo:.0f}-{hi:.0f} flops per transcendental: {span[0]:.2f}-{span[1]:.2f} ms)")


if __name__ == "__main__":
    main()
