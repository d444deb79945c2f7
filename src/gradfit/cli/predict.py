"""`gradfit predict RUN`: choice probabilities, shares, derived quantities and elasticities with intervals.

Everything that can fail on the input (run folder, data, --set, formulas) fails before any file is written;
the output folder is written beside itself and moved into place whole, so a folder that exists is complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import typer

NUMBER = "{:.6g}"


def predict(
    run: Path = typer.Argument(..., help="A completed ICLV run folder (or a model folder: its latest run)."),
    data: Path = typer.Option(None, "--data", help="Predict for this CSV/Parquet file instead of the run's data."),
    set_: list[str] = typer.Option(
        None, "--set", help="Change a data column for the scenario, COLUMN=FORMULA (repeatable): --set 'Cost=Cost*1.1'."
    ),
    quantity: list[str] = typer.Option(
        None, "--quantity", "-q", help="A derived quantity NAME=FORMULA of parameters and data (repeatable)."
    ),
    elasticity: list[str] = typer.Option(
        None, "--elasticity", "-e", help="Aggregate elasticities of the shares to this data column (repeatable)."
    ),
    draws: int = typer.Option(1000, "--draws", min=0, help="Krinsky-Robb parameter draws (0: delta method only)."),
    level: float = typer.Option(0.95, "--level", min=0.5, max=0.999, help="Confidence level of the intervals."),
    seed: int = typer.Option(0, "--seed", help="Seed of the Krinsky-Robb draws."),
    name: str = typer.Option(None, "--name", help="Output folder RUN/predictions/NAME (default: base or scenario)."),
    out: Path = typer.Option(None, "--out", help="Output folder (default: RUN/predictions/NAME)."),
) -> None:
    """Predict from a fitted model: per-row probabilities, shares, quantities and elasticities with intervals."""
    from gradfit.cli.progress import ProgressView
    from gradfit.predict import Settings, load_fitted, make_scenario, predict, quantity_expressions, run_spec
    from gradfit.runs import RunError, resolve_run

    folder = resolve_run(run)
    if name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", ".."):
        raise RunError(f"--name {name!r}: use letters, digits, '_', '.' and '-' only (it names a folder)")
    changes = tuple(set_ or ())
    with ProgressView(every=max(draws // 10, 1)) as view:
        view.message(f"{folder.path}: building the model...")
        scenario = make_scenario(run_spec(folder), data, changes)
        fitted = load_fitted(folder.path, data=scenario.frame)
        exprs = quantity_expressions(fitted.spec, list(quantity or ()))
        target = out or folder.path / "predictions" / (name or ("base" if scenario.frame is None else "scenario"))
        settings = Settings(draws=draws, level=level, seed=seed)

        def progress(done: int, total: int) -> None:
            view.update(done, f"Krinsky-Robb draws {done}/{total}", force=done == total)

        result = predict(fitted, scenario, exprs, tuple(elasticity or ()), settings, progress)
    meta = {
        "run": str(folder.path),
        "data": scenario.label,
        "changes": list(changes),
        "choices_observed": scenario.choices_observed,
        "quantities": {k: v.text for k, v in exprs.items()},
        "elasticities": list(elasticity or ()),
        "draws": draws,
        "level": level,
        "seed": seed,
        "notes": list(result.notes),
    }
    _write_folder(
        Path(target),
        {
            "rows.csv": result.rows.to_csv(index=False, float_format="%.10g"),
            "shares.csv": result.shares.to_csv(index=False, float_format="%.10g"),
            "quantities.csv": result.quantities.to_csv(index=False, float_format="%.10g"),
            "prediction.json": json.dumps(meta, indent=1) + "\n",
        },
    )
    _print(result, level)
    for note in result.notes:
        print(f"note: {note}")
    print(target)


def _write_folder(target: Path, files: dict[str, str]) -> None:
    """Write the files into a sibling folder, then swap it in: readers see the old folder or the new one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name, text in files.items():
        (tmp / name).write_text(text, encoding="utf-8")
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


def _print(result, level: float) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 140)
    pct = f"{100 * level:g}%"
    if len(result.shares):
        t = Table(title="Shares", title_justify="left")
        for col in ("alternative", "observed", "predicted", "s.e.", f"delta {pct}", f"Krinsky-Robb {pct}"):
            t.add_column(col, justify="left" if col == "alternative" else "right")
        for _, r in result.shares.iterrows():
            t.add_row(r["alternative"], *_cells(r))
        console.print(t)
    if len(result.quantities):
        t = Table(title="Quantities", title_justify="left")
        for col in ("quantity", "kind", "estimate", "s.e.", f"delta {pct}", f"Krinsky-Robb {pct}"):
            t.add_column(col, justify="left" if col in ("quantity", "kind") else "right")
        for _, r in result.quantities.iterrows():
            t.add_row(r["quantity"], r["kind"], *_cells(r)[1:])
        console.print(t)


def _cells(r) -> list[str]:
    def fmt(x) -> str:
        return "" if x is None or x != x else NUMBER.format(x)

    kr = f"[{fmt(r['kr_lo'])}, {fmt(r['kr_hi'])}]" if "kr_lo" in r else ""
    return [
        fmt(r.get("observed")),
        fmt(r.get("predicted", r.get("estimate"))),
        fmt(r["se"]),
        f"[{fmt(r['delta_lo'])}, {fmt(r['delta_hi'])}]",
        kr,
    ]
