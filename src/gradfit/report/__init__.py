"""The HTML report of an ICLV run: `write_report(run)` -> <run>/report.html, one self-contained file.

`collect` gathers what the report shows (compute only), `plots` draws the figures as PNG data URIs, `html`
renders the Jinja2 template and writes the file atomically.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gradfit.errors import GradfitError
from gradfit.report.collect import (
    GROUPS,
    DrawStudy,
    Estimate,
    ReportData,
    SweepContext,
    collect,
    parameter_groups,
    sweep_context,
)
from gradfit.report.html import render

REPORT = "report.html"

__all__ = [
    "GROUPS",
    "REPORT",
    "DrawStudy",
    "Estimate",
    "ReportData",
    "SweepContext",
    "collect",
    "parameter_groups",
    "render",
    "sweep_context",
    "write_report",
]


def write_report(run: str | Path, out: str | Path | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Collect, render and write the report of `run` (a run folder or a `latest` link); returns the file.

    `out` defaults to <run folder>/report.html; `log` gets a line before each slow step.
    """
    from gradfit.report.html import write

    if out is not None:
        out = Path(out)
        if out.is_dir():
            raise GradfitError(f"--out {out}: is a folder; give the report's file name, e.g. {out / REPORT}")
        if not out.parent.is_dir():
            raise GradfitError(f"--out {out}: the folder {out.parent} does not exist; create it first")
    say = log or (lambda _: None)
    data = collect(run, log=say)
    target = out if out is not None else data.run / REPORT
    say("drawing the figures and writing the report...")
    try:
        return write(data, target)
    except OSError as exc:
        raise GradfitError(f"{target}: cannot write the report ({exc.strerror or exc})") from None
