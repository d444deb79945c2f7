"""`gradfit runs [DIR]` lists run folders; `gradfit show RUN` prints one run's summary."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import typer


def _row(run) -> dict:
    from gradfit.runs import CHECKPOINT, RESULTS, RunError

    when = datetime.fromtimestamp(run.file("config.yaml").stat().st_mtime).isoformat(sep=" ", timespec="seconds")
    row = {"model": run.model_dir.name, "run": run.path.name, "date": when, "status": "incomplete"}
    try:
        if run.complete and run.read_json(RESULTS).get("workload") in ("vaep", "bilm"):
            res = run.read_json(RESULTS)
            row.update(
                status="complete",
                workload=res["workload"],
                val_loss=res["val_loss"],
                converged=res["stopped"] != "not finite",
                iterations=res["epochs_run"],
                total_s=res["wall_s"],
            )
        elif run.complete:
            res = run.read_json(RESULTS)
            row.update(
                status="complete",
                loglikelihood=res["loglikelihood"],
                n_parameters=res["n_parameters"],
                converged=res["converged"],
                iterations=res["iterations"],
                total_s=res["timings"]["total_s"],
            )
        elif run.file(CHECKPOINT).is_file():
            ck = run.read_json(CHECKPOINT)
            row.update(loglikelihood=ck["loglikelihood"], iterations=ck["iteration"], n_parameters=len(ck["params"]))
    except (RunError, KeyError, TypeError):
        row["status"] = "damaged"
    return row


def runs(
    runs_dir: Path = typer.Argument(Path("runs"), help="A runs folder (as given to `gradfit fit --runs-dir`)."),
    json_: bool = typer.Option(False, "--json", help="Print the list as JSON."),
) -> None:
    """List runs: model, run, date, log-likelihood (ICLV) or validation loss (VAEP), converged, time, status."""
    from rich.console import Console
    from rich.table import Table

    from gradfit.runs import list_runs

    rows = [_row(r) for r in list_runs(runs_dir)]
    if json_:
        print(json.dumps(rows, indent=1))
        return
    table = Table(box=None, pad_edge=False)
    for col in ("model", "run", "date", "LL / val loss", "params", "converged", "iter/epochs", "time", "status"):
        table.add_column(col, justify="right" if col in {"LL / val loss", "params", "iter/epochs", "time"} else "left")

    def fmt(x, spec):
        return "" if x is None else format(x, spec)

    for r in rows:
        table.add_row(
            r["model"],
            r["run"],
            r["date"],
            fmt(r.get("loglikelihood"), ".4f") if "val_loss" not in r else fmt(r["val_loss"], ".5f"),
            fmt(r.get("n_parameters"), "d"),
            {True: "yes", False: "no"}.get(r.get("converged"), ""),
            fmt(r.get("iterations"), "d"),
            fmt(r.get("total_s"), ".1f") + ("s" if r.get("total_s") is not None else ""),
            r["status"],
        )
    console = Console(width=None if sys.stdout.isatty() else 200, highlight=False)
    if rows:
        console.print(table)
    else:
        console.print(f"no runs in {runs_dir}")


def show(
    run: Path = typer.Argument(..., help="A run folder, or <runs>/<model>/latest."),
) -> None:
    """Print a run's summary (or, for an unfinished run, where it stopped)."""
    from gradfit.runs import CHECKPOINT, resolve_run

    folder = resolve_run(run)
    for summary in ("summary.txt", "metrics.txt"):  # an ICLV fit's estimates; a VAEP / biLM model's metrics
        if folder.complete and folder.file(summary).is_file():
            print(folder.file(summary).read_text(encoding="utf-8"), end="")
            print(folder.path)
            return
    import yaml

    workload = (yaml.safe_load(folder.file("config.yaml").read_text(encoding="utf-8")) or {}).get("workload")
    if workload == "bilm":
        where = "a checkpoint in state.npz" if folder.file("state.npz").is_file() else "no checkpoint"
        print(
            f"{folder.path}: incomplete ({where}); continue it with `gradfit bilm train CONFIG --resume {folder.path}`"
        )
        return
    if workload == "vaep":
        print(f"{folder.path}: incomplete (training stopped); train again with `gradfit vaep train CONFIG`")
        return
    where = "no checkpoint"
    if folder.file(CHECKPOINT).is_file():
        ck = folder.read_json(CHECKPOINT)
        where = f"last checkpoint at iteration {ck['iteration']}, LL {ck['loglikelihood']:.6f}"
    print(f"{folder.path}: incomplete ({where}); continue it with `gradfit fit SPEC --resume {folder.path}`")
