"""SPADL actions as device arrays: the columns the features, labels and values need, and nothing else.

Every computation after this point (features, labels, predictions, values) is a whole-array JAX function of
these columns, so a season is one call, not a loop over games or actions. Rows must be in SPADL order: by game,
then period, then time (the order `gradfit vaep convert` writes).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import pandas as pd

from gradfit.errors import DataError

# a tenth of a millisecond: providers time events to the millisecond, and SPADL's inserted dribbles sit
# halfway between two events; an int32 of ticks covers 59 hours
TICKS = 10_000

REQUIRED = (
    "game_id",
    "period_id",
    "time_seconds",
    "team_id",
    "type_id",
    "result_id",
    "bodypart_id",
    "start_x",
    "start_y",
    "end_x",
    "end_y",
)


class Actions(NamedTuple):
    """Equal-length columns of SPADL actions (a pytree: jit and device_put take it whole)."""

    game: jnp.ndarray  # int32, 0..G-1 in order of appearance
    period: jnp.ndarray  # int32, SPADL period_id
    time: jnp.ndarray  # int32 ticks (TICKS per second) since the period's start: exact differences, unlike float32
    team: jnp.ndarray  # int32 team code (any coding that is equal for equal teams)
    home: jnp.ndarray  # bool: the action's team is its game's home team
    type: jnp.ndarray  # int32 SPADL type_id
    result: jnp.ndarray  # int32 SPADL result_id
    bodypart: jnp.ndarray  # int32 SPADL bodypart_id
    start_x: jnp.ndarray  # float32 metres, SPADL orientation (home team attacks left to right)
    start_y: jnp.ndarray
    end_x: jnp.ndarray
    end_y: jnp.ndarray

    @property
    def size(self) -> int:
        return int(self.game.shape[0])


def actions_arrays(frame: pd.DataFrame, home_team: pd.Series | dict | None = None, source: str = "actions") -> Actions:
    """Host arrays (numpy) from a SPADL table; `home_team` maps game_id -> home team id.

    Without `home_team`, the table needs a `home_team_id` column (what `gradfit vaep convert` writes).
    """
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing SPADL column(s) {', '.join(missing)}; convert events with `gradfit vaep convert`"
        )
    if home_team is None:
        if "home_team_id" not in frame.columns:
            raise DataError(f"{source}: no home_team_id column; convert events with `gradfit vaep convert`")
        home_ids = frame["home_team_id"]
    else:
        home_ids = frame["game_id"].map(dict(home_team))
        if home_ids.isna().any():
            raise DataError(f"{source}: no home team for game {frame.loc[home_ids.isna(), 'game_id'].iloc[0]}")
    games, game_codes = _codes(frame["game_id"])
    order_ok = _sorted(game_codes, frame["period_id"].to_numpy(), frame["time_seconds"].to_numpy())
    if order_ok is not None:
        raise DataError(f"{source}: row {order_ok} is out of order; sort by game, period_id and time_seconds")
    for col in ("start_x", "start_y", "end_x", "end_y", "time_seconds"):
        bad = ~np.isfinite(frame[col].to_numpy(dtype=float))
        if bad.any():
            raise DataError(f"{source}: column {col} is missing or not finite in row {int(np.argmax(bad))}")
    team_codes = _codes(frame["team_id"].astype(str))[1]
    return Actions(
        game=game_codes,
        period=frame["period_id"].to_numpy(np.int32),
        time=np.rint(frame["time_seconds"].to_numpy(np.float64) * TICKS).astype(np.int32),
        team=team_codes,
        home=(frame["team_id"].astype(str).to_numpy() == home_ids.astype(str).to_numpy()),
        type=frame["type_id"].to_numpy(np.int32),
        result=frame["result_id"].to_numpy(np.int32),
        bodypart=frame["bodypart_id"].to_numpy(np.int32),
        start_x=frame["start_x"].to_numpy(np.float32),
        start_y=frame["start_y"].to_numpy(np.float32),
        end_x=frame["end_x"].to_numpy(np.float32),
        end_y=frame["end_y"].to_numpy(np.float32),
    )


def _codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(values, sort=False)
    return np.asarray(uniques), codes.astype(np.int32)


def _sorted(game: np.ndarray, period: np.ndarray, time: np.ndarray) -> int | None:
    """The first row that breaks (game, period, time) order with the previous row, or None.

    Games need only be contiguous (each game's rows together), not in any particular order.
    """
    if game.size < 2:
        return None
    new_game = game[1:] != game[:-1]
    starts = np.flatnonzero(np.r_[True, new_game])
    if np.unique(game[starts]).size != starts.size:  # a game split into two blocks
        dup = pd.Series(game[starts]).duplicated().to_numpy()
        return int(starts[np.argmax(dup)])
    same = ~new_game
    back = same & ((period[1:] < period[:-1]) | ((period[1:] == period[:-1]) & (time[1:] < time[:-1] - 1e-6)))
    return int(np.argmax(back)) + 1 if back.any() else None
