"""socceraction 1.5.3 on the same resampled season as benchmarks/bench_vaep.py: the peer's rating path timed.

Run in socceraction's own environment (it pins numpy < 2), e.g.
    python -m venv /tmp/sa && /tmp/sa/bin/pip install socceraction==1.5.3 kloppy==3.15.0 xgboost-cpu \
        "multimethod<1.11" "pyarrow<26"
    /tmp/sa/bin/python benchmarks/peers/socceraction_vaep.py --actions examples/vaep/data/actions.parquet

Per game, as socceraction's VAEP class does: gamestates + play_left_to_right + the default features, the
scores/concedes labels, xgboost prediction (two depth-3, 100-tree models fitted on the first 10 games), and
the VAEP formula. Prints the seconds of each stage.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import socceraction.spadl as spadl
import xgboost
from socceraction.vaep import features as fs
from socceraction.vaep import formula
from socceraction.vaep import labels as lab
from socceraction.vaep.base import xfns_default

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/season.py
from season import resample  # noqa: E402

warnings.filterwarnings("ignore")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--actions", required=True)
    ap.add_argument("--target", type=int, default=643150)
    args = ap.parse_args()
    season = resample(pd.read_parquet(args.actions), args.target)
    games = [spadl.add_names(g.drop(columns=["type_name", "result_name", "bodypart_name"]).reset_index(drop=True))
             for _, g in season.groupby("game_id", sort=False)]  # fmt: skip
    t = {}
    t0 = time.perf_counter()
    X = []
    for g in games:
        gs = fs.play_left_to_right(fs.gamestates(g.copy(), 3), g["home_team_id"].iloc[0])
        X.append(pd.concat([fn(gs) for fn in xfns_default], axis=1))
    t["features"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    Y = [pd.concat([lab.scores(g, 10), lab.concedes(g, 10)], axis=1) for g in games]
    t["labels"] = time.perf_counter() - t0
    xs, ys = pd.concat(X[:10]).astype(float), pd.concat(Y[:10])
    models = [xgboost.XGBClassifier(n_estimators=100, max_depth=3).fit(xs, ys[c]) for c in ("scores", "concedes")]
    t0 = time.perf_counter()
    P = [np.stack([m.predict_proba(x.astype(float))[:, 1] for m in models], axis=1) for x in X]
    t["prediction"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for g, p in zip(games, P, strict=True):
        formula.value(g, pd.Series(p[:, 0]), pd.Series(p[:, 1]))
    t["values"] = time.perf_counter() - t0
    t["total"] = sum(t.values())
    print(f"actions={len(season)} games={len(games)} " + " ".join(f"{k}_s={v:.2f}" for k, v in t.items()))


if __name__ == "__main__":
    main()
