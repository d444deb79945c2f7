"""The work behind `gradfit vaep convert | train | rate`: files, run folders and progress around the workload.

As for ICLV fits: everything that can fail on the user's input (config, --set, data) is checked before the run
folder is made; a user error while training removes the new folder; results.json is written last, and only
then does <model>/latest point at the run. Ratings are written into the chosen run's results/ folder, each file
atomically, with ratings.json (what was rated, with which model) last.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from gradfit.errors import DataError, GradfitError, SpecError
from gradfit.io.files import atomic_write_bytes, atomic_write_text
from gradfit.runs import (
    CONFIG,
    RunError,
    RunFolder,
    RunRecorder,
    create_run,
    file_sha256,
    git_commit,
    package_versions,
    resolve_run,
)

COLUMNS = ("epoch", "train_loss", "val_loss", "best", "seconds", "actions_per_second")
BEST = "best.npz"
CHECKPOINTS = "checkpoints"
RATINGS = "results"


def read_config(path: Path, overrides: list[str]):
    """The VAEP config file with --set overrides (and flags, given as overrides after them) applied."""
    from gradfit.io.overrides import read_config as read_workload_config
    from gradfit.vaep.config import config_from_dict

    return read_workload_config(path, overrides, config_from_dict)


def read_table(path: str | Path, what: str) -> pd.DataFrame:
    """A Parquet or CSV table (by suffix); a missing or unreadable file is a one-line error naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found; make it with `gradfit vaep convert`")
    try:
        return pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # pyarrow and pandas raise many types for a damaged file
        raise DataError(
            f"{path}: not a readable {what} table ({type(exc).__name__}); convert the events again"
        ) from None


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """Parquet or CSV by suffix, atomically."""
    if path.suffix == ".csv":
        return atomic_write_text(path, frame.to_csv(index=False))
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return atomic_write_bytes(path, buf.getvalue())


def convert(folder: Path, provider: str, out: Path, progress: Callable[[int, int, str], None]) -> list[Path]:
    """Event files -> out/actions.parquet, out/players.parquet, out/games.csv (written only when all parsed)."""
    from gradfit.vaep.load import convert_matches, discover

    matches = discover(folder, provider)
    converted = convert_matches(matches, provider, progress)
    out.mkdir(parents=True, exist_ok=True)
    return [
        write_table(converted.actions, out / "actions.parquet"),
        write_table(converted.players, out / "players.parquet"),
        write_table(converted.games, out / "games.csv"),
    ]


def train_run(
    config_path: Path, overrides: list[str], runs_dir: Path | None, name: str | None, say: Callable[[str], None]
) -> tuple[RunFolder, dict]:
    import jax

    from gradfit.train import TrainSettings, binary_metrics
    from gradfit.train.vaep import train_vaep
    from gradfit.vaep import pipeline

    t_start = time.perf_counter()
    config = read_config(config_path, overrides)
    actions = read_table(config.data.actions, "actions")
    prepared = pipeline.prepare(actions, config.features.previous_actions, config.labels.horizon, config.data.actions)
    split = pipeline.split_games(
        len(prepared.game_ids), config.data.validation_games, config.data.test_games, config.data.split_seed
    )
    train_rows, val_rows, test_rows = (pipeline.rows(prepared, split[k]) for k in ("train", "validation", "test"))
    tr = config.training
    settings = TrainSettings(tr.epochs, tr.batch_size, tr.patience, 0.0, tr.seed)
    if len(train_rows) < tr.batch_size:
        raise SpecError(
            f"training.batch_size {tr.batch_size}: the training games have only {len(train_rows)} actions; "
            "choose a smaller batch size"
        )

    if config.baseline.xgboost:
        from gradfit.vaep.baseline import require_xgboost

        require_xgboost()
    run = create_run(runs_dir if runs_dir is not None else Path(config_path).parent / "runs", config.name, name)
    dumped = config.model_dump(mode="json")
    run.write_text(CONFIG, yaml.safe_dump(dumped, sort_keys=False, width=120))
    (run.path / CHECKPOINTS).mkdir()
    recorder = RunRecorder(run, COLUMNS, flush_every=1, flush_seconds=0.0)
    device = jax.devices()[0]
    head = (
        f"{config.name}: {len(actions):,} actions in {len(prepared.game_ids)} games "
        f"({len(split['train'])} train / {len(split['validation'])} validation / {len(split['test'])} test), "
        f"{prepared.x.shape[1]} features, MLP {config.model.hidden} {config.model.precision}, "
        f"horizon {config.labels.horizon}, device {device.platform}"
    )
    recorder.log(f"started: {head}")
    recorder.log(f"config {Path(config_path).resolve()}" + (f", --set {' '.join(overrides)}" if overrides else ""))
    say(f"{head}\nrun folder {run.path}")

    def on_epoch(report, model) -> None:
        rate = report.examples / report.seconds if report.seconds > 0 else float("nan")
        blob = pipeline.to_bytes(model)
        if tr.keep_checkpoints == "all":
            atomic_write_bytes(run.path / CHECKPOINTS / f"epoch_{report.epoch:03d}.npz", blob)
        if report.best:
            atomic_write_bytes(run.path / BEST, blob)
        line = (
            f"epoch {report.epoch:3d}  train {report.train_loss:.5f}  val {report.val_loss:.5f}"
            f"{'  *' if report.best else '   '}  {report.seconds:6.2f}s  {rate:12,.0f} actions/s"
        )
        recorder.log(line)
        recorder.row({**report._asdict(), "actions_per_second": rate})
        say(line)

    try:
        model, result = train_vaep(
            prepared,
            train_rows,
            val_rows,
            tuple(config.model.hidden),
            config.model.precision,
            tr.learning_rate,
            settings,
            tr.pos_weight,
            config.features.previous_actions,
            on_epoch,
        )
    except GradfitError:
        run.discard()
        raise
    except BaseException as exc:  # interrupted or crashed: keep the checkpoints written so far
        recorder.log(f"stopped: {type(exc).__name__}: {exc}")
        recorder.flush()
        raise
    if result.best_epoch == 0:
        run.discard()
        raise DataError(
            f"{config_path}: training diverged in the first epoch (loss not finite); lower the learning rate"
        )
    say(f"{result.stopped} after {result.epochs_run} epochs; best epoch {result.best_epoch}")

    y = np.asarray(prepared.y)
    prior = prior_loss(y[train_rows].mean(axis=0), y[val_rows])
    metrics: dict = {"mlp": {}}
    eval_rows = test_rows if len(test_rows) else val_rows
    p_mlp = np.asarray(pipeline.predict(model, prepared.x[eval_rows]))
    for i, h in enumerate(pipeline.HEADS):
        metrics["mlp"][h] = binary_metrics(y[eval_rows, i], p_mlp[:, i])
    baseline = None
    if config.baseline.xgboost:
        from gradfit.vaep.baseline import fit_predict

        say("fitting the xgboost baseline on the same features and split...")
        x = np.asarray(prepared.x)
        p_xgb, baseline = fit_predict(
            x[train_rows], y[train_rows], x[val_rows], y[val_rows], x[eval_rows],
            trees=config.baseline.trees, max_depth=config.baseline.max_depth,
            learning_rate=config.baseline.learning_rate, early_stopping=config.baseline.early_stopping, seed=tr.seed,
        )  # fmt: skip
        metrics["xgboost"] = {h: binary_metrics(y[eval_rows, i], p_xgb[:, i]) for i, h in enumerate(pipeline.HEADS)}
    train_seconds = sum(r["seconds"] for r in result.history)
    # throughput from the epochs after the first: the first one also compiles
    timed = result.history[1:] or result.history
    seen = len(timed) * (len(train_rows) // tr.batch_size * tr.batch_size)
    timed_seconds = sum(r["seconds"] for r in timed)
    record = {
        "workload": "vaep",
        "model": config.name,
        "val_loss": result.best_val_loss,
        # the base rates' loss, and the share of it the model removes: comparable across horizons
        "val_prior_loss": prior,
        "val_skill": 1.0 - result.best_val_loss / prior if prior > 0 else None,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped": result.stopped,
        "metrics_on": "test" if len(test_rows) else "validation",
        "metrics": metrics,
        "baseline": baseline,
        "games": {k: [str(prepared.game_ids[g]) for g in v] for k, v in split.items()},
        "actions": {"train": len(train_rows), "validation": len(val_rows), "test": len(test_rows)},
        "features": int(prepared.x.shape[1]),
        "train_seconds": train_seconds,
        "actions_per_second": seen / timed_seconds if timed_seconds > 0 else None,
        "device": f"{device.platform}: {getattr(device, 'device_kind', '')}",
        "data_sha256": file_sha256(config.data.actions),
        "git_commit": git_commit(Path(config_path).resolve().parent),
        "config": str(Path(config_path).resolve()),
        "overrides": list(overrides),
        "versions": package_versions(
            ("gradfit", "jax", "jaxlib", "numpy", "optax", "xgboost", "xgboost-cpu", "kloppy")
        ),
        "wall_s": time.perf_counter() - t_start,
    }
    recorder.log(f"finished: best epoch {result.best_epoch}, val loss {result.best_val_loss:.6f}")
    recorder.flush()
    run.write_text("metrics.txt", format_metrics(record))
    run.finish(record)
    return run, record


def prior_loss(rates: np.ndarray, y: np.ndarray) -> float:
    """Validation loss (summed over the heads, as the MLP's) of predicting the training base rates."""
    p = np.clip(rates, 1e-12, 1 - 1e-12)
    return float(np.mean(np.sum(-(y * np.log(p) + (1 - y) * np.log1p(-p)), axis=1)))


def format_metrics(record: dict) -> str:
    """The model quality table (Brier, log-loss, AUC per head), MLP and xgboost side by side."""
    lines = [f"{record['model']}: metrics on the {record['metrics_on']} games (best epoch {record['best_epoch']})"]
    lines.append(f"{'model':10s} {'head':9s} {'Brier':>9s} {'log-loss':>9s} {'AUC':>7s} {'base rate':>10s}")
    for name, heads in record["metrics"].items():
        for head, m in heads.items():
            lines.append(
                f"{name:10s} {head:9s} {m['brier']:9.5f} {m['log_loss']:9.5f} {m['auc']:7.4f} {m['base_rate']:10.5f}"
            )
    return "\n".join(lines) + "\n"


def find_model_run(config, runs_dir: Path | None, config_path: Path, model: str) -> RunFolder:
    """`latest`, a run folder's name (or the --name it was trained with) under the model's folder, or a path."""
    base = (runs_dir if runs_dir is not None else Path(config_path).parent / "runs") / config.name
    candidate = base / model if model != "latest" else base / "latest"
    if not candidate.exists() and Path(model).exists():
        candidate = Path(model)
    if not candidate.exists() and base.is_dir():  # the --name given at training: <stamp>-<name>, newest first
        named = sorted(p for p in base.iterdir() if p.is_dir() and p.name.endswith(f"-{model}"))
        if named:
            candidate = named[-1]
    if not candidate.exists():
        raise RunError(f"--model {model}: no such run under {base}; `gradfit runs {base.parent}` lists them")
    run = resolve_run(candidate)
    if not run.complete or not run.file(BEST).is_file():
        raise RunError(f"--model {model}: {run.path} did not finish training (no results.json / {BEST})")
    return run


def rate_run(
    config_path: Path,
    overrides: list[str],
    runs_dir: Path | None,
    model_name: str,
    actions_path: Path | None,
    players_path: Path | None,
    say: Callable[[str], None],
) -> tuple[RunFolder, list[Path]]:
    from gradfit.vaep import pipeline, ratings

    config = read_config(config_path, overrides)
    run = find_model_run(config, runs_dir, config_path, model_name)
    model = pipeline.from_bytes(run.file(BEST).read_bytes(), str(run.file(BEST)))
    actions_file = Path(actions_path) if actions_path else Path(config.data.actions)
    players_file = Path(players_path) if players_path else (Path(config.data.players) if config.data.players else None)
    actions = read_table(actions_file, "actions")
    minutes = read_table(players_file, "players") if players_file else None
    start = time.perf_counter()
    prepared = pipeline.prepare(actions, model.previous_actions, None, str(actions_file))
    out = np.asarray(pipeline.rate(model, prepared))
    seconds = time.perf_counter() - start
    valued = actions.copy()
    for i, col in enumerate(("p_scores", "p_concedes", "offensive_value", "defensive_value", "vaep_value")):
        valued[col] = out[:, i]
    match = ratings.player_match(valued, minutes)
    season = ratings.player_season(match)
    folder = run.path / RATINGS
    folder.mkdir(exist_ok=True)
    written = [write_table(valued, folder / "actions_vaep.parquet")]
    for name, table in (("player_match", match), ("player_season", season)):
        written += [write_table(table, folder / f"{name}.csv"), write_table(table, folder / f"{name}.parquet")]
    manifest = {
        "model_run": str(run.path),
        "actions": str(actions_file.resolve()),
        "actions_sha256": file_sha256(actions_file),
        "players": str(players_file.resolve()) if players_file else None,
        "n_actions": len(actions),
        "n_games": len(prepared.game_ids),
        "n_players": len(season),
        "seconds_values": seconds,
        "files": [p.name for p in written],
    }
    written.append(atomic_write_text(folder / "ratings.json", json.dumps(manifest, indent=1)))
    say(f"rated {len(actions):,} actions of {len(prepared.game_ids)} games with {run.path.name} in {seconds:.2f}s")
    return run, written
