"""Opt-in benchmark: the after-the-fit commands on the Optima classic model (issue 10).

    python benchmarks/bench_predict.py [--draws 1000] [--runs-dir DIR] [--json FILE]

Fits examples/optima/classic.yaml into a run folder (or reuses the latest fit there), then times, each in this
process: loading the fitted run (model built on its data), `predict` with Krinsky-Robb draws, one derived
quantity and the aggregate elasticities to one column (first call: compilation included; second call:
compiled), and writing the HTML report. A short table is printed last.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import jax

from gradfit.cli.main import main
from gradfit.predict import Settings, load_fitted, make_scenario, predict, quantity_expressions
from gradfit.report import write_report

SPEC = Path(__file__).resolve().parents[1] / "examples" / "optima" / "classic.yaml"
VOT = "VOT_PT_HWH=BETA_TIME_PT_REF / BETA_COST_HWH * 60 / 200 * 10"


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--runs-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    runs = args.runs_dir or Path(tempfile.mkdtemp(prefix="gradfit-bench-predict-"))
    latest = runs / "optima_classic" / "latest"
    if not latest.exists():
        assert main(["fit", str(SPEC), "--runs-dir", str(runs), "--json"]) == 0

    rows = []

    def timed(what: str, fn):
        t0 = time.perf_counter()
        out = fn()
        rows.append((what, time.perf_counter() - t0))
        return out

    fitted = timed("load run + build model", lambda: load_fitted(latest))
    scenario = make_scenario(fitted.spec)
    exprs = quantity_expressions(fitted.spec, [VOT])
    settings = Settings(draws=args.draws)
    for label in ("first call", "second call"):
        out = timed(
            f"predict, {args.draws} KR draws, 1 quantity, elasticities to TimePT ({label})",
            lambda: predict(fitted, scenario, exprs, ("TimePT",), settings),
        )
    timed("predict, delta method only (no KR draws)", lambda: predict(fitted, scenario, exprs, (), Settings(draws=0)))
    timed("report.html (model, figures, template)", lambda: write_report(latest))

    device = jax.devices()[0]
    record = {
        "device": f"{device.platform}: {getattr(device, 'device_kind', '')}",
        "jax": jax.__version__,
        "python": platform.python_version(),
        "timings_s": dict(rows),
        "shares": out.shares.to_dict(orient="records"),
        "quantities": out.quantities.to_dict(orient="records"),
    }
    if args.json:
        args.json.write_text(json.dumps(record, indent=1, default=float) + "\n", encoding="utf-8")
    print(f"\n{record['device']}, JAX {record['jax']}, Python {record['python']}")
    print(out.quantities[["quantity", "kind", "estimate", "se", "kr_lo", "kr_hi"]].to_string(index=False))
    print(f"\n{'step':<80} {'seconds':>8}")
    for what, seconds in rows:
        print(f"{what:<80} {seconds:8.2f}")


if __name__ == "__main__":
    main_bench()
