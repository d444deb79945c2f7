"""Sweeps: grids over spec keys, multistart and draw-stability studies, as ordinary run folders.

A sweep lives in `<runs dir>/<sweep name>/`: every combination is a run folder there, next to `sweep.db` (the
SQLite queue, unless --storage names another database), `sweep.csv`, `sweep.json`, `sweep.log` and the
summaries (`multistart.json`, `draws_*.csv/png`). Workload-agnostic: the caller passes `fit_one`, which fits
the base spec with a list of `--set` overrides into a run folder and returns (run path, results record).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gradfit.io.files import atomic_write_text
from gradfit.sweep.coordinate import finished_rows, open_study, sqlite_url, work
from gradfit.sweep.spec import Combination, SweepSpec, combinations, read_sweep
from gradfit.sweep.summary import format_top, rank, to_json, write_summaries

__all__ = ["Combination", "SweepOutcome", "SweepSpec", "combinations", "read_sweep", "run_sweep", "write_outputs"]

FitOne = Callable[[Path, list[str], Path, str], tuple[Path, dict]]


@dataclass(frozen=True)
class SweepOutcome:
    folder: Path
    rows: list[dict]  # finished runs, best first
    total: int  # combinations in the sweep
    ran_here: int  # runs this process did
    top: str  # the top 5 as text


def criterion_value(criterion: str, record: dict) -> float:
    """Higher is better: LL, or minus AIC / BIC."""
    value = record["loglikelihood"] if criterion == "loglikelihood" else -record[criterion]
    return float(value) if value is not None and math.isfinite(value) else float("nan")


def run_sweep(
    sweep_path: Path,
    fit_one: FitOne,
    runs_dir: Path | None = None,
    storage: str | None = None,
    max_runs: int | None = None,
    log: Callable[[str], None] = print,
    outputs: bool = True,
    heartbeat_s: float | None = None,
) -> SweepOutcome:
    """Join (or start) the sweep and run queued combinations; with `outputs`, write the tables afterwards."""
    sweep, base_path, base = read_sweep(sweep_path)
    combos = combinations(sweep, base)
    folder = (runs_dir or sweep_path.parent / "runs") / sweep.name
    folder.mkdir(parents=True, exist_ok=True)
    sweep_log = folder / "sweep.log"

    def say(line: str) -> None:
        with open(sweep_log, "a", encoding="utf-8") as fh:
            fh.write(f"[pid {os.getpid()}] {line}\n")
        log(line)

    extra = {} if heartbeat_s is None else {"heartbeat_s": heartbeat_s}
    study = open_study(storage or sqlite_url(folder), sweep.name, combos, **extra)
    say(f"sweep {sweep.name}: {len(combos)} runs of {base_path.name}; storage {storage or 'sweep.db'}")

    def run_one(combo: Combination, name: str) -> dict:
        run_path, record = fit_one(base_path, combo.overrides, folder, name)
        return {
            "loglikelihood": record["loglikelihood"],
            "aic": record["aic"],
            "bic": record["bic"],
            "criterion": criterion_value(sweep.criterion, record),
            "converged": record["converged"],
            "iterations": record["iterations"],
            "wall_s": record.get("wall_s"),
            "run": str(run_path),
            "estimates": record["estimates"],
        }

    ran = work(study, run_one, say, max_runs=max_runs, **extra)
    rows = rank(finished_rows(study))
    top = format_top(rows) if rows else "no finished runs yet"
    if outputs:
        write_outputs(folder, sweep, rows, len(combos))
    return SweepOutcome(folder, rows, len(combos), ran, top)


def write_outputs(folder: Path, sweep: SweepSpec, rows: list[dict], total: int) -> list[Path]:
    """sweep.csv (one row per finished run, best first, the best marked), sweep.json, and the summaries."""
    flat = []
    for i, r in enumerate(rows):
        flat.append(
            {
                "rank": i + 1,
                "best": i == 0,
                "trial": r["trial"],
                **{f"axis:{k}": v for k, v in r["axes"].items()},
                **({"start": r["start"]} if sweep.starts else {}),
                "state": r["state"],
                "loglikelihood": r["loglikelihood"],
                "aic": r["aic"],
                "bic": r["bic"],
                sweep.criterion if sweep.criterion == "loglikelihood" else f"-{sweep.criterion}": r["criterion"],
                "converged": r["converged"],
                "iterations": r["iterations"],
                "time_s": r["time_s"],
                "run": r["run"],
                "error": r["error"],
            }
        )
    written = [atomic_write_text(folder / "sweep.csv", pd.DataFrame(flat).to_csv(index=False))]
    summary = {
        "sweep": sweep.model_dump(mode="json"),
        "runs": total,
        "finished": len(rows),
        "complete": len(rows) == total,
        "best": rows[0] if rows else None,
        "rows": rows,
    }
    written.append(atomic_write_text(folder / "sweep.json", json.dumps(to_json(summary), indent=1, default=str)))
    written += write_summaries(folder, rows, list(sweep.axes), sweep.starts is not None, sweep.tolerance)
    return written
