"""`gradfit bench SPEC`: time one gradient by finite differences and by autodiff on each device."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer

from gradfit.cli.progress import say


def _human(seconds: float) -> str:
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1e3:.3g} ms"


def format_bench(b) -> str:
    lines = [
        f"Model: {b.model}   individuals: {b.n_individuals}   draws: {b.draws}   free parameters: {b.n_parameters}",
        "",
        f"{'method':<10}{'device':<34}{'precision':<10}{'per gradient':>14}{'IQR':>12}{'calls':>7}{'compile':>10}"
        f"{'speed-up':>10}",
    ]
    ups = {(s["method"], s["device"], s["precision"]): s["speedup"] for s in b.speedups()}
    for t in b.timings:
        up = ups.get((t.method, t.device, t.precision))
        lines.append(
            f"{t.method:<10}{t.device_name[:33]:<34}{t.precision:<10}{_human(t.median_s):>14}{_human(t.iqr_s):>12}"
            f"{t.evaluations:>7}{_human(t.compile_s):>10}{(f'{up:,.0f}x' if up else ''):>10}"
        )
    base = next((s["speedup_vs"] for s in b.speedups()), None)
    if base:
        lines.append(f"(speed-up against {base.replace('/', ' on ')}; median of repeats after a warm-up)")
    for t in b.timings:
        if t.max_abs_diff is not None:
            lines.append(f"{t.device}: max |forward difference - autodiff| over parameters: {t.max_abs_diff:.3g}")
    if b.precision_errors:
        lines += [
            "",
            "Error against float64 on the same device (LL and gradient at the start values; estimates after fits):",
        ]
        for e in b.precision_errors:
            est = ""
            if "estimates_max_shift_in_se" in e:
                est = (
                    f", estimates max |diff| {e['estimates_max_abs_error']:.2g}"
                    f" ({e['estimates_max_shift_in_se']:.2g} standard errors)"
                )
            lines.append(
                f"  {e['device']} {e['precision']}: LL {e['ll_abs_error']:.3g} (relative {e['ll_rel_error']:.2g}), "
                f"gradient max relative {e['grad_max_rel_error']:.2g}{est}"
            )
    for f in b.fits:
        lines.append(
            f"fit on {f['device']} ({f['precision']}): LL {f['loglikelihood']:.4f}, {f['iterations']} iterations, "
            f"estimate "
            f"{_human(f['estimate_s'])}, standard errors {_human(f['inference_s'])}, compile {_human(f['compile_s'])}"
        )
    lines += [f"skipped {s}" for s in b.skipped]
    return "\n".join(lines)


def bench(
    spec: Path = typer.Argument(..., help="Model specification (YAML)."),
    methods: str = typer.Option("fd,autodiff", help="Comma-separated: fd, autodiff."),
    devices: str = typer.Option("cpu,gpu", help="Comma-separated: cpu, gpu (unavailable ones are skipped)."),
    repeat: int = typer.Option(20, help="Timed autodiff gradients per device (after one warm-up)."),
    fd_repeat: int = typer.Option(3, "--fd-repeat", help="Timed finite-difference gradients per device."),
    fit: bool = typer.Option(False, "--fit", help="Also time a whole fit on each device."),
    precisions: str = typer.Option(
        "",
        help="Comma-separated: float64, float32, mixed; times autodiff in each and reports the error of LL, "
        "gradient (and with --fit the estimates) against float64. Default: the spec's precision.",
    ),
    set_: list[str] = typer.Option(None, "--set", help="Override a spec value, KEY=VALUE (repeatable)."),
    json_: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Finite differences vs autodiff, CPU vs GPU, on the same model and parameters."""
    import gradfit
    from gradfit.bench import run_bench
    from gradfit.errors import GradfitError
    from gradfit.io.overrides import apply_overrides

    if repeat < 1 or fd_repeat < 1:
        raise GradfitError("--repeat and --fd-repeat must be at least 1")
    model_spec = apply_overrides(gradfit.read_spec(spec), list(set_ or []), source=str(spec))
    result = run_bench(
        model_spec,
        [m.strip() for m in methods.split(",") if m.strip()],
        [d.strip() for d in devices.split(",") if d.strip()],
        repeat,
        fd_repeat,
        fit,
        progress=say,
        precisions=[p.strip() for p in precisions.split(",") if p.strip()] or None,
    )
    if json_:
        out = dataclasses.asdict(result) | {"speedups": result.speedups()}
        print(json.dumps(out, indent=1))
    else:
        print(format_bench(result))
