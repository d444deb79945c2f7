"""`gradfit fit SPEC`: estimate a model into a new (or resumed) run folder and print its summary."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def fit(
    spec: Path = typer.Argument(..., help="Model specification (YAML)."),
    set_: list[str] = typer.Option(
        None, "--set", help="Override a spec value, KEY=VALUE with a dotted key (repeatable): --set integration.n=2000."
    ),
    runs_dir: Path = typer.Option(None, "--runs-dir", help="Where run folders go (default: runs/ beside the spec)."),
    name: str = typer.Option(None, "--name", help="Suffix of the run folder's name."),
    device: str = typer.Option(None, "--device", help="cpu, gpu or auto (same as --set estimation.device=...)."),
    optimizer: str = typer.Option(
        None, help="trust_bfgs, bfgs, newton or box_trust_bfgs (same as --set estimation.optimizer=...)."
    ),
    resume: Path = typer.Option(None, "--resume", help="Continue this interrupted run from its last checkpoint."),
    checkpoint_seconds: float = typer.Option(
        2.0, "--checkpoint-seconds", help="Write history and checkpoint at least this often (0: every iteration)."
    ),
    json_: bool = typer.Option(False, "--json", help="Print results.json (with run_dir) instead of the summary."),
) -> None:
    """Estimate a model by simulated maximum likelihood; the last line of stdout is the run folder."""
    from gradfit.cli.estimation import run_fit

    flags = list(set_ or [])
    if device is not None:
        flags.append(f"estimation.device={device}")
    if optimizer is not None:
        flags.append(f"estimation.optimizer={optimizer}")
    run, record, summary = run_fit(spec, flags, runs_dir, name, resume, max(checkpoint_seconds, 0.0))
    if json_:
        print(json.dumps({**record, "run_dir": str(run.path)}, indent=1))
    else:
        print(summary)
        print(run.path)
