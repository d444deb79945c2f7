"""`gradfit report RUN`: write a run's self-contained HTML report (report.html in the run folder)."""

from __future__ import annotations

from pathlib import Path

import typer


def report(
    run: Path = typer.Argument(..., help="A run folder of `gradfit fit`, a `latest` link or a model folder."),
    out: Path = typer.Option(None, "--out", help="The HTML file to write (default: RUN/report.html)."),
) -> None:
    """Write an ICLV run's report: estimates, fit, convergence, indicators, choices, latent variables, draws."""
    from gradfit.cli.progress import say
    from gradfit.report import write_report

    print(write_report(run, out, log=say))
