"""Opt-in benchmark for issue 8 (VAEP): values end to end, training throughput, model quality.

    python benchmarks/bench_vaep.py --actions examples/vaep/data/actions.parquet [--target 643150]
        [--epochs 5] [--repeat 5] [--quality] [--json FILE]

The season is the real matches resampled: whole games drawn with replacement from the converted matches
(`gradfit vaep convert`), each copy a new game id, until --target actions. Timings are medians after a warm-up
call (which compiles; its time is reported apart), synchronised by copying the results to the host.

- "values" row: SPADL table (pandas, host) -> device arrays -> features + labels -> MLP prediction (bf16,
  [256, 128]) -> offensive / defensive / VAEP values -> numpy on the host: the whole rating path.
- "train" rows: actions per second of the training epoch step for the seed's configuration (hidden [256, 128],
  batch 4096), bf16 and float32, epochs after the first.
- "quality" rows (--quality): leave-one-match-out on the real matches (test one match, validate on the next,
  train on the rest; no copies of a test game anywhere in training): Brier, log-loss and AUC of the MLP and
  of xgboost on the same features and split, pooled over the folds.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import jax
import numpy as np
import pandas as pd
from season import resample  # benchmarks/season.py (a script's folder is on sys.path)

from gradfit.train import TrainSettings, binary_metrics
from gradfit.train.vaep import train_vaep
from gradfit.vaep import pipeline
from gradfit.vaep.model import fit_scaler, init_params
from gradfit.vaep.pipeline import VaepModel


def timed(fn, repeat: int) -> tuple[float, float, list[float]]:
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return first, statistics.median(samples), samples


def values_row(season: pd.DataFrame, repeat: int) -> dict:
    prepared = pipeline.prepare(season.iloc[:5000])  # a model with the right input width; weights irrelevant
    params = init_params(jax.random.key(0), prepared.x.shape[1], (256, 128), np.array([0.01, 0.002]))
    scaler = fit_scaler(prepared.x)
    model = VaepModel(params, scaler, np.ones(2, np.float32), "bf16", 3)

    def whole():
        p = pipeline.prepare(season)
        return np.asarray(pipeline.rate(model, p))

    def host_only():
        return pipeline.actions_arrays(season)

    first, med, samples = timed(whole, repeat)
    _, host_med, _ = timed(host_only, repeat)
    out = whole()
    assert out.shape == (len(season), 5) and np.isfinite(out).all()
    return {
        "row": "values",
        "actions": len(season),
        "games": int(season["game_id"].nunique()),
        "first_s": first,
        "median_s": med,
        "min_s": min(samples),
        "host_arrays_s": host_med,
    }


def train_rows(season: pd.DataFrame, epochs: int) -> list[dict]:
    prepared = pipeline.prepare(season)
    rows_all = np.arange(len(season))
    val = rows_all[: len(season) // 10]
    out = []
    for precision in ("bf16", "float32"):
        times = []

        def on_epoch(report, model, times=times):
            times.append((report.seconds, report.examples))

        settings = TrainSettings(epochs=epochs, batch_size=4096, patience=None, seed=0)
        train_vaep(prepared, rows_all, val, (256, 128), precision, 1e-3, settings, 1.0, 3, on_epoch)
        later = times[1:]
        out.append(
            {
                "row": f"train {precision}",
                "actions": len(season),
                "first_epoch_s": times[0][0],
                "epoch_s": statistics.median(t for t, _ in later),
                "actions_per_s": sum(n for _, n in later) / sum(t for t, _ in later),
            }
        )
    return out


def quality_rows(actions: pd.DataFrame, epochs: int) -> list[dict]:
    """Leave one match out (test), the next one validates, the rest train; pooled over the folds."""
    from gradfit.vaep.baseline import fit_predict

    prepared = pipeline.prepare(actions)
    games = np.arange(len(prepared.game_ids))
    y = np.asarray(prepared.y)
    x = np.asarray(prepared.x)
    pooled = {"mlp": [], "xgboost": []}
    truth = []
    for k in games:
        test, val = np.array([k]), np.array([(k + 1) % len(games)])
        train_games = np.setdiff1d(games, np.r_[test, val])
        tr, va, te = (pipeline.rows(prepared, g) for g in (train_games, val, test))
        settings = TrainSettings(epochs=epochs, batch_size=256, patience=5, seed=0)
        model, _ = train_vaep(prepared, tr, va, (256, 128), "bf16", 1e-3, settings, 1.0, 3)
        pooled["mlp"].append(np.asarray(pipeline.predict(model, prepared.x[te])))
        p_xgb, _ = fit_predict(x[tr], y[tr], x[va], y[va], x[te])
        pooled["xgboost"].append(p_xgb)
        truth.append(y[te])
    y_all = np.concatenate(truth)
    out = []
    for name, parts in pooled.items():
        p = np.concatenate(parts)
        for i, head in enumerate(pipeline.HEADS):
            out.append({"row": f"quality {name}", "head": head, **binary_metrics(y_all[:, i], p[:, i])})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--actions", required=True, help="SPADL actions of the real matches (gradfit vaep convert)")
    ap.add_argument("--target", type=int, default=643150)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quality", action="store_true")
    ap.add_argument("--quality-epochs", type=int, default=60)
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    actions = pd.read_parquet(args.actions)
    season = resample(actions, args.target)
    dev = jax.devices()[0]
    meta = {
        "device": f"{dev.platform} {getattr(dev, 'device_kind', '')}",
        "cpu": platform.processor() or platform.machine(),
        "jax": jax.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    rows = [values_row(season, args.repeat)]
    if not args.skip_train:
        rows += train_rows(season, args.epochs)
    if args.quality:
        rows += quality_rows(actions, args.quality_epochs)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "rows": rows}, fh, indent=1)
    print(json.dumps(meta))
    for r in rows:
        print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))


if __name__ == "__main__":
    main()
