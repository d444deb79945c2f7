"""Sweeps: grids over spec keys, multistart and draw-stability studies, as ordinary run folders.

A sweep lives in `<runs dir>/<sweep name>/`: every combination is a run folder there, next to `sweep.db` (the
SQLite queue, unless --storage names another database), `sweep.csv`, `sweep.json`, `sweep.log` and the
summaries (`multistart.json`, `draws_*.csv/png`). Workload-agnostic: the caller passes `fit_one`, which fits
the base spec with a list of `--set` overrides into a run folder and returns (run path, results record).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gradfit.io.files import atomic_write_text
from gradfit.sweep.coordinate import finished_rows, open_study, sqlite_url, work
from gradfit.sweep.spec import Combination, SweepSpec, combinations, read_sweep
from gradfit.sweep.summary import format_top, rank, to_json, write_summaries
from gradfit.sweep.workload import ICLV, Workload

__all__ = [
    "ICLV",
    "Combination",
    "SweepOutcome",
    "SweepSpec",
    "Workload",
    "combinations",
    "read_sweep",
    "run_sweep",
    "write_outputs",
]

FitOne = Callable[[Path, list[str], Path, str], tuple[Path, dict]]


@dataclass(frozen=True)
class SweepOutcome:
    folder: Path
    rows: list[dict]  # finished runs, best first
    total: int  # combinations in the sweep
    ran_here: int  # runs this process did
    top: str  # the top 5 as text


def run_sweep(
    sweep_path: Path,
    fit_one: FitOne,
    runs_dir: Path | None = None,
    storage: str | None = None,
    max_runs: int | None = None,
    log: Callable[[str], None] = print,
    outputs: bool = True,
    heartbeat_s: float | None = None,
    workload: Workload = ICLV,
) -> SweepOutcome:
    """Join (or start) the sweep and run queued combinations; with `outputs`, write the tables afterwards."""
    sweep, base_path, base = read_sweep(sweep_path, workload)
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
        metrics = workload.metrics(record)
        return {
            **metrics,
            "criterion_name": sweep.criterion,
            "criterion_value": metrics.get(sweep.criterion),
            "criterion": workload.criterion(sweep.criterion, metrics),
            "wall_s": record.get("wall_s"),
            "run": str(run_path),
        }

    ran = work(study, run_one, say, max_runs=max_runs, **extra)
    rows = rank(finished_rows(study, tuple(workload.criteria)))
    top = format_top(rows, metric=sweep.criterion) if rows else "no finished runs yet"
    if outputs:
        write_outputs(folder, sweep, rows, len(combos), workload)
    return SweepOutcome(folder, rows, len(combos), ran, top)


def _mark_best(folder: Path, run: Path) -> Path:
    """<sweep folder>/best -> the best run's folder (a symlink, replaced atomically; a text file where links fail)."""
    link, tmp = folder / "best", folder / ".best.tmp"
    try:
        target = os.path.relpath(run, folder)
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp)
        os.replace(tmp, link)
    except OSError:
        atomic_write_text(link, str(run) + "\n")
    return link


def write_outputs(
    folder: Path, sweep: SweepSpec, rows: list[dict], total: int, workload: Workload = ICLV
) -> list[Path]:
    """sweep.csv (one row per finished run, best first, the best marked), sweep.json, and the summaries."""
    flat = []
    skip = {"trial", "key", "axes", "start", "state", "criterion", "converged", "iterations", "time_s", "run", "error"}
    skip |= {"estimates", "std_errors"}
    sign = workload.criteria[sweep.criterion]
    for i, r in enumerate(rows):
        flat.append(
            {
                "rank": i + 1,
                "best": i == 0,
                "trial": r["trial"],
                **{f"axis:{k}": v for k, v in r["axes"].items()},
                **({"start": r["start"]} if sweep.starts else {}),
                "state": r["state"],
                **{k: v for k, v in r.items() if k not in skip and not isinstance(v, dict | list)},
                sweep.criterion if sign > 0 else f"-{sweep.criterion}": r["criterion"],
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
    best = next((r for r in rows if r.get("run") and r["state"] == "complete"), None)
    if best is not None:
        written.append(_mark_best(folder, Path(best["run"])))
    if "loglikelihood" in workload.criteria:  # multistart optima and draw studies compare likelihoods
        written += write_summaries(folder, rows, list(sweep.axes), sweep.starts is not None, sweep.tolerance)
    return written
