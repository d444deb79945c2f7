"""`gradfit compare RUN RUN...`: estimation runs side by side, with likelihood-ratio tests for nested pairs."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import typer


def _num(x: float, spec: str) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _p(p: float) -> str:
    return format(p, ".4f") if p >= 1e-4 else format(p, ".2e")


def _cell(value: float, se: float, fixed) -> str:
    import pandas as pd

    if pd.isna(fixed):
        return ""  # the run does not have this parameter
    if fixed:
        return f"{value:.4f} (fixed)"
    return f"{value:.4f} ({_num(se, '.4f') or 'n/a'})"


def compare(
    runs: list[Path] = typer.Argument(..., help="Two or more run folders (or <runs>/<model>/latest links)."),
    csv: Path | None = typer.Option(None, "--csv", help="Also write the estimates side by side to this CSV file."),
) -> None:
    """Compare estimation runs: fit statistics, estimates (robust s.e.) and LR tests for nested pairs."""
    from rich.console import Console
    from rich.table import Table

    from gradfit.errors import GradfitError
    from gradfit.io.files import atomic_write_text
    from gradfit.runs.compare import compare_runs

    cmp = compare_runs(list(runs))
    console = Console(width=None if sys.stdout.isatty() else 200, highlight=False)
    labels = [r.label for r in cmp.runs]
    for r in cmp.runs:
        console.print(f"{r.label}: {r.path}")

    fit = Table(box=None, pad_edge=False, title="fit", title_justify="left")
    fit.add_column("")
    for label in labels:
        fit.add_column(label, justify="right")
    rows = (
        ("LL", "loglikelihood", ".4f"),
        ("null LL", "null_loglikelihood", ".4f"),
        ("rho²", "rho_squared", ".4f"),
        ("k", "n_parameters", "d"),
        ("AIC", "aic", ".2f"),
        ("BIC", "bic", ".2f"),
        ("observations", "n_observations", "d"),
        ("individuals", "n_individuals", "d"),
    )
    for name, col, spec in rows:
        fit.add_row(name, *(_num(cmp.fit.at[label, col], spec) for label in labels))
    fit.add_row("converged", *("yes" if cmp.fit.at[label, "converged"] else "no" for label in labels))
    fit.add_row("integration", *(cmp.fit.at[label, "integration"] for label in labels))
    console.print(fit)

    est = Table(box=None, pad_edge=False, title="estimates: value (robust s.e.)", title_justify="left")
    est.add_column("parameter")
    for label in labels:
        est.add_column(label, justify="right")
    for name in cmp.estimates.index:
        est.add_row(
            name,
            *(
                _cell(*(cmp.estimates.at[name, (label, q)] for q in ("value", "robust_std_err", "fixed")))
                for label in labels
            ),
        )
    console.print()
    console.print(est)

    if len(cmp.tests):
        lr = Table(box=None, pad_edge=False, title="likelihood-ratio tests", title_justify="left")
        for col in ("restricted", "general", "LR", "df", "p", "note"):
            lr.add_column(col, justify="right" if col in {"LR", "df", "p"} else "left")
        for t in cmp.tests.itertuples(index=False):
            lr.add_row(t.restricted, t.general, f"{t.lr:.4f}", str(t.df), _p(t.p_value), t.note)
        console.print()
        console.print(lr)
    for note in cmp.notes:
        console.print(f"note: {note}")

    if csv is not None:
        try:
            atomic_write_text(csv, cmp.flat_estimates().to_csv(float_format="%.12g"))
        except OSError as exc:
            raise GradfitError(
                f"--csv {csv}: cannot write it ({exc.strerror or exc}); choose a writable path"
            ) from None
        console.print(f"estimates written to {csv}")
