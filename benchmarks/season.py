"""A realistic season from a few real matches: whole games drawn with replacement, each copy a new game id.

Shared by benchmarks/bench_vaep.py (gradfit) and benchmarks/peers/socceraction_vaep.py (socceraction, in its
own environment), so both time the same actions; numpy and pandas only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def resample(actions: pd.DataFrame, target: int, seed: int = 0) -> pd.DataFrame:
    """Whole games drawn with replacement until `target` actions; each copy a new game id, SPADL order kept."""
    games = [g for _, g in actions.groupby("game_id", sort=False)]
    rng = np.random.default_rng(seed)
    out, n, k = [], 0, 0
    while n < target:
        g = games[rng.integers(len(games))].copy()
        g["game_id"] = f"r{k:05d}-{g['game_id'].iloc[0]}"
        out.append(g)
        n, k = n + len(g), k + 1
    return pd.concat(out, ignore_index=True)
