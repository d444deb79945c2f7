"""Player ratings: VAEP summed per player per match and per season, and per 90 minutes actually played.

Per-90 figures divide by the real minutes on the pitch (from the lineups, substitutions, sending-offs and
each period's real length: `gradfit.vaep.minutes`), not by 90 per appearance. A player who played but made
no on-the-ball action is rated 0, not left out; actions by a player with no minutes record (the table does
not cover that game) keep their sums but get no per-90 figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gradfit.errors import DataError

VALUE_COLUMNS = ("offensive_value", "defensive_value", "vaep_value")
MINUTES_COLUMNS = ("game_id", "team_id", "player_id", "minutes_played")


def _key(frame: pd.DataFrame) -> pd.DataFrame:
    """Ids as strings, so that a CSV-read 206 and a Parquet "206" are the same team."""
    out = frame.copy()
    for col in ("game_id", "team_id", "player_id"):
        if col in out:
            values = out[col]
            if pd.api.types.is_float_dtype(values):  # integer ids with a gap come back from a reader as floats
                values = values.map(lambda v: str(int(v)) if pd.notna(v) and float(v).is_integer() else str(v))
            out[col] = values.astype(str)
    return out


def player_match(actions: pd.DataFrame, minutes: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per player per game: action count, value sums, minutes and per-90 values."""
    missing = [c for c in ("game_id", "team_id", "player_id", *VALUE_COLUMNS) if c not in actions]
    if missing:
        raise DataError(f"actions: missing column(s) {', '.join(missing)} for the ratings")
    acts = _key(actions[actions["player_id"].notna()])
    sums = (
        acts.groupby(["game_id", "team_id", "player_id"], sort=False)[list(VALUE_COLUMNS)]
        .agg(["sum", "size"])
        .pipe(_flatten)
    )
    if minutes is None:
        table = sums.assign(minutes_played=np.nan)
    else:
        missing = [c for c in MINUTES_COLUMNS if c not in minutes]
        if missing:
            raise DataError(f"players: missing column(s) {', '.join(missing)}; make it with `gradfit vaep convert`")
        mins = _key(minutes)
        mins = mins[mins["game_id"].isin(set(acts["game_id"]))]  # only the games being rated
        extra = [c for c in ("player_name", "team_name") if c in mins]
        table = mins[[*MINUTES_COLUMNS, *extra]].merge(sums, on=["game_id", "team_id", "player_id"], how="outer")
        table["actions"] = table["actions"].fillna(0).astype(int)
        played = table["minutes_played"].notna()
        for col in VALUE_COLUMNS:
            table.loc[played, col] = table.loc[played, col].fillna(0.0)
    return _per90(table).sort_values(["game_id", "vaep_value"], ascending=[True, False], ignore_index=True)


def player_season(match_table: pd.DataFrame) -> pd.DataFrame:
    """One row per player over all games of the table: sums, games, minutes and per-90 values.

    Per-90 figures use only the games with a minutes record: a game's value without its minutes would
    inflate the rate. The sums cover every game.
    """
    names = [c for c in ("player_name",) if c in match_table]
    timed = match_table["minutes_played"].notna()
    match_table = match_table.assign(**{f"_{col}_timed": match_table[col].where(timed, 0.0) for col in VALUE_COLUMNS})
    agg = {col: "sum" for col in ("actions", *VALUE_COLUMNS, *(f"_{c}_timed" for c in VALUE_COLUMNS))}
    agg["minutes_played"] = lambda s: s.sum(min_count=1)
    agg["game_id"] = "nunique"
    agg.update({c: "last" for c in names})
    agg["team_id"] = lambda s: ",".join(dict.fromkeys(s.astype(str)))  # a player may change teams
    table = match_table.groupby("player_id", sort=False).agg(agg).rename(columns={"game_id": "games"})
    table = _per90(table.reset_index(), suffix="_timed")
    table = table.drop(columns=[f"_{c}_timed" for c in VALUE_COLUMNS])
    return table.sort_values("vaep_value", ascending=False, ignore_index=True)


def _flatten(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({col: frame[(col, "sum")] for col in VALUE_COLUMNS})
    out["actions"] = frame[(VALUE_COLUMNS[0], "size")]
    return out.reset_index()


def _per90(table: pd.DataFrame, suffix: str = "") -> pd.DataFrame:
    """value / minutes * 90, where value is the column itself or (suffix) its sum over timed games."""
    minutes = table["minutes_played"].astype(float)
    ok = minutes > 0
    for col in VALUE_COLUMNS:
        value = table[f"_{col}{suffix}"] if suffix else table[col]
        table[f"{col}_per90"] = np.where(ok, value / minutes.where(ok, 1.0) * 90.0, np.nan)
    return table
