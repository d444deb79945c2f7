"""`gradfit fit SPEC`: estimate a model and print its estimates."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def fit(
    spec: Path = typer.Argument(..., help="Model specification (YAML)."),
    optimizer: str = typer.Option(None, help="bfgs or newton (default: the spec's estimation.optimizer)."),
) -> None:
    """Estimate a model by simulated maximum likelihood and print the estimates."""
    import gradfit
    from gradfit.errors import GradfitError
    from gradfit.estimate import OPTIMIZERS

    if optimizer is not None and optimizer not in OPTIMIZERS:
        raise GradfitError(f"--optimizer: unknown optimizer {optimizer!r}; use one of {sorted(OPTIMIZERS)}")
    model = gradfit.Model(spec)
    live = sys.stderr.isatty()

    def progress(it) -> None:
        line = (
            f"iter {it.iteration:5d}  LL {it.loglikelihood:14.6f}  |g| {it.gradient_norm:10.3e}  "
            f"rel.g {it.relative_gradient:9.2e}  {it.elapsed:7.2f}s"
        )
        if live:
            print("\r" + line, end="", file=sys.stderr, flush=True)
        elif it.iteration % 25 == 0:
            print(line, file=sys.stderr, flush=True)

    print(
        f"{model.spec.name}: {model.n_individuals} individuals, {model.n_observations} observations, "
        f"{len(model.parameter_names)} free parameters; compiling...",
        file=sys.stderr,
        flush=True,
    )
    res = model.fit(optimizer=optimizer, progress=progress)
    if live:
        print(file=sys.stderr)
    print(res.summary())
