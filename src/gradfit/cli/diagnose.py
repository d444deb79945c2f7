"""`gradfit diagnose SPEC`: is the gradient right, is anything NaN, where does the fit come from, is the
model identified, how noisy is the simulation. Exit code: 0 all good, 3 warnings only, 4 a critical finding."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer


def _format(d, show_all: bool) -> str:
    from gradfit.diagnose.findings import LABEL

    out = [f"Model: {d.model}   at: {d.at}   log-likelihood: {d.loglikelihood:.6f}", "", "Findings:"]
    out += [f"  [{LABEL[f.severity]:>8}] {f.check}: {f.message}" for f in d.findings]
    if d.gradient:
        rows = sorted(d.gradient, key=lambda r: -r["abs_error"] / max(r["tolerance"], 1e-300))
        rows = rows if show_all else rows[:10]
        out += [
            "",
            "Gradient, autodiff vs central differences" + ("" if show_all else " (10 worst; --all for every one)"),
        ]
        out.append(f"  {'parameter':<24}{'autodiff':>16}{'finite diff':>16}{'abs err':>11}{'tolerance':>11}  flag")
        for r in rows:
            out.append(
                f"  {r['parameter']:<24}{r['autodiff']:>16.8g}{r['finite_difference']:>16.8g}"
                f"{r['abs_error']:>11.2e}{r['tolerance']:>11.2e}  {'WRONG' if r['flagged'] else ''}"
            )
    if d.components:
        out += ["", "Log-likelihood by component (posterior-weighted; they add up to the total)"]
        for c in d.components:
            alone = "" if c["marginal"] is None else f"   alone {c['marginal']:14.4f}"
            out.append(f"  {c['component']:<36}{c['posterior_mean']:14.4f}{alone}")
    if d.eigen:
        lam = d.eigen["eigenvalues"]
        out += [
            "",
            f"Curvature (eigenvalues of -H): min {min(lam):.4g}, max {max(lam):.4g}, "
            f"condition number {d.eigen['condition_number']:.4g}",
        ]
    if d.noise.get("sd") is not None:
        lls = ", ".join(f"{x:.3f}" for x in d.noise["loglikelihoods"])
        out.append(f"Simulation noise: {d.noise['draw_type']} x {d.noise['draws']}: LL {lls} (sd {d.noise['sd']:.4g})")
    out += ["", f"Severity: {LABEL[d.severity]} (exit code {d.exit_code})"]
    return "\n".join(out)


def _strict(x):
    """JSON has no NaN or Infinity: non-finite numbers become null."""
    if isinstance(x, dict):
        return {k: _strict(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_strict(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if hasattr(x, "item"):  # numpy scalars
        return _strict(x.item())
    return x


def diagnose(
    spec: Path = typer.Argument(..., help="Model specification (YAML)."),
    at: str = typer.Option("start", "--at", help="'start' (the spec's start values) or a run folder (its estimates)."),
    set_: list[str] = typer.Option(None, "--set", help="Override a spec value, KEY=VALUE (repeatable)."),
    show_all: bool = typer.Option(False, "--all", help="List every parameter's gradient check."),
    json_: bool = typer.Option(False, "--json", help="Print the diagnosis as JSON."),
) -> None:
    """Check a model at its start values or at a run's estimates; exit 0 ok, 3 warnings, 4 critical."""
    import gradfit
    from gradfit.diagnose import diagnose as run_checks
    from gradfit.errors import GradfitError
    from gradfit.io.overrides import apply_overrides
    from gradfit.runs import RESULTS, resolve_run

    model_spec = apply_overrides(gradfit.read_spec(spec), list(set_ or []), source=str(spec))
    params = None
    label = "start"
    if at != "start":
        run = resolve_run(at)
        estimates = run.read_json(RESULTS)["estimates"] if run.complete else run.read_json("checkpoint.json")["params"]
        params = {k: (v["value"] if isinstance(v, dict) else v) for k, v in estimates.items()}
        label = str(run.path)
    model = gradfit.Model(model_spec)
    if params is not None and set(params) != set(model.parameter_names):
        raise GradfitError(f"--at {at}: the run's parameters are not this model's free parameters; use its spec")
    d = run_checks(model, params, label)
    print(json.dumps(_strict(d.to_dict()), indent=1) if json_ else _format(d, show_all))
    raise typer.Exit(d.exit_code)
