"""`gradfit sweep SWEEP.yaml`: run a grid / multistart / draw study as run folders, resumable, over workers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

from gradfit.cli.progress import say


def _fit_one(spec_path: Path, overrides: list[str], folder: Path, name: str) -> tuple[Path, dict]:
    from gradfit.cli.estimation import run_fit

    run, record, _ = run_fit(spec_path, overrides, folder, name, None, 2.0)
    return run.path, record


def _train_one(config_path: Path, overrides: list[str], folder: Path, name: str) -> tuple[Path, dict]:
    from gradfit.cli.vaep_run import train_run

    run, record = train_run(config_path, overrides, folder, name, lambda line: print(line, file=sys.stderr))
    return run.path, record


def _vaep_metrics(record: dict) -> dict:
    mlp = record["metrics"]["mlp"]
    out = {
        "val_loss": record["val_loss"],
        "val_skill": record.get("val_skill"),
        "converged": record["stopped"] != "not finite",
        "iterations": record["epochs_run"],
        "best_epoch": record["best_epoch"],
        "stopped": record["stopped"],
        "actions_per_second": record.get("actions_per_second"),
    }
    for head, m in mlp.items():
        out |= {f"{record['metrics_on']}_{k}_{head}": m[k] for k in ("brier", "log_loss", "auc")}
    return out


def _bilm_one(config_path: Path, overrides: list[str], folder: Path, name: str) -> tuple[Path, dict]:
    from gradfit.cli.bilm_run import train_run

    run, record = train_run(config_path, overrides, folder, name, None, lambda line: print(line, file=sys.stderr))
    return run.path, record


def _bilm_metrics(record: dict) -> dict:
    return {
        "val_perplexity": record["val_perplexity"],
        "val_loss": record["val_loss"],
        "converged": record["stopped"] != "not finite",
        "iterations": record["epochs_run"],
        "best_epoch": record["best_epoch"],
        "steps": record["steps"],
        "stopped": record["stopped"],
    }


def _workload(sweep_file: Path):
    """ICLV, or VAEP / biLM when the sweep's base file says `workload: vaep` / `bilm`; with what runs one."""
    import yaml

    from gradfit.sweep import ICLV, Workload

    try:
        base = yaml.safe_load(sweep_file.read_text(encoding="utf-8")).get("base")
        kind = yaml.safe_load((sweep_file.parent / base).read_text(encoding="utf-8")).get("workload", "iclv")
    except (OSError, AttributeError, TypeError, yaml.YAMLError):
        kind = "iclv"  # read_sweep reports what is wrong with the files
    if kind == "bilm":
        from gradfit.bilm.config import config_from_dict as bilm_config
        from gradfit.cli.bilm_run import read_config as read_bilm

        bilm = Workload(
            name="bilm",
            read_base=lambda path: read_bilm(path, []),
            build=bilm_config,
            criteria={"val_perplexity": -1, "val_loss": -1},
            default_criterion="val_perplexity",
            metrics=_bilm_metrics,
        )
        return bilm, _bilm_one
    if kind != "vaep":
        return ICLV, _fit_one
    from gradfit.cli.vaep_run import read_config
    from gradfit.vaep.config import config_from_dict

    vaep = Workload(
        name="vaep",
        read_base=lambda path: read_config(path, []),
        build=config_from_dict,
        # val_skill (1 - val_loss / base-rate loss) compares runs with different horizons; val_loss does not
        criteria={"val_loss": -1, "val_skill": 1},
        default_criterion="val_loss",
        metrics=_vaep_metrics,
    )
    return vaep, _train_one


def _worker_env(index: int, workers: int) -> dict:
    """One GPU per worker where there are enough; on a CPU, the cores shared out."""
    env = dict(os.environ)
    gpus = [g for g in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if g] or None
    if gpus is None:
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
            gpus = [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU")]
        except (OSError, subprocess.SubprocessError):
            gpus = []
    if len(gpus) >= workers:
        env["CUDA_VISIBLE_DEVICES"] = gpus[index]
    else:
        env.setdefault("GRADFIT_CPU_DEVICES", str(max(1, len(os.sched_getaffinity(0)) // workers)))
    return env


def sweep(
    sweep_file: Path = typer.Argument(..., help="Sweep file (YAML): base spec, axes, starts, criterion."),
    workers: int = typer.Option(1, help="Worker processes on this machine (one GPU each where there are enough)."),
    max_runs: int = typer.Option(0, "--max-runs", help="Stop this process after K runs (0: until done)."),
    storage: str = typer.Option(
        "", help="Database URL shared by workers (default: SQLite sweep.db in the sweep folder)."
    ),
    runs_dir: Path = typer.Option(
        None, "--runs-dir", help="Folder of the sweep folder (default: runs/ beside the file)."
    ),
    heartbeat: float = typer.Option(
        10.0, help="Seconds between a running trial's heartbeats; 3 missed: presumed dead."
    ),
) -> None:
    """Run every combination of a sweep once, as ordinary run folders; resume by running it again."""
    from gradfit.errors import GradfitError
    from gradfit.sweep import read_sweep, run_sweep

    if workers < 1 or max_runs < 0 or heartbeat <= 0:
        raise GradfitError("--workers must be at least 1, --max-runs at least 0 and --heartbeat positive")
    workload, fit_one = _workload(sweep_file)
    sweep_spec, _, _ = read_sweep(sweep_file, workload)  # bad input fails here, before any worker starts
    folder = (runs_dir or sweep_file.parent / "runs") / sweep_spec.name
    folder.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{(folder / 'sweep.db').resolve()}"

    common = ["--storage", url, "--runs-dir", str(folder.parent), "--heartbeat", str(heartbeat)]
    children = []
    if workers > 1:
        # the queue is created here first, so the workers only join it
        run_sweep(
            sweep_file, fit_one, folder.parent, url, max_runs=0, log=say, outputs=False, heartbeat_s=heartbeat,
            workload=workload,
        )  # fmt: skip
        for i in range(1, workers):
            argv = [sys.executable, "-m", "gradfit", "sweep", str(sweep_file), *common]
            if max_runs:
                argv += ["--max-runs", str(max_runs)]
            children.append(subprocess.Popen(argv, env=_worker_env(i, workers)))
        os.environ.update({k: v for k, v in _worker_env(0, workers).items() if k in ("CUDA_VISIBLE_DEVICES",)})
    try:
        outcome = run_sweep(
            sweep_file, fit_one, folder.parent, url, max_runs=max_runs or None, log=say, heartbeat_s=heartbeat,
            workload=workload,
        )  # fmt: skip
    finally:
        codes = [c.wait() for c in children]
    if any(codes):
        say(f"{sum(1 for c in codes if c)} worker(s) stopped with an error; run the sweep again to finish it")
    if children:  # the tables again, now with every worker's runs
        outcome = run_sweep(
            sweep_file, fit_one, folder.parent, url, max_runs=0, log=say, heartbeat_s=heartbeat, workload=workload
        )
    print(outcome.top)
    print(f"{len(outcome.rows)} of {outcome.total} runs finished; tables in {outcome.folder}")
