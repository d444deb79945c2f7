"""Player ratings (gradfit.vaep.ratings) on hand-made actions and minutes, against sums worked out by hand.

Two games, two teams. Values are multiples of 1/8 and 1/16 (exact in binary), so sums compare exactly and
per-90 figures to float rounding.

game 1 (team A: players 1, 2, 4; team B: players 3, 5)
  player 1 (A): three actions, vaep 0.5 + 0.25 - 0.125 = 0.625 (offensive 0.75, defensive -0.125); 90 minutes
  player 2 (A): one action, vaep 0.25; 45 minutes
  player 3 (B): two actions, vaep 0.375 + 0.125 = 0.5; 60 minutes
  player 4 (A): no action; 30 minutes                         -> 0 actions, values 0, per-90 0
  player 5 (B): one action, vaep 1.0; no minutes record       -> sums kept, per-90 NaN
  an action without a player (value 2.0)                      -> in no player's sums
game 2
  player 1 (A): two actions, vaep 0.375 + 0.125 = 0.5; 30 minutes
  player 3 (B): one action, vaep 0.0625; 90 minutes

Season, player 1: 5 actions, vaep 1.125 over 120 minutes in 2 games -> per-90 1.125 / 120 * 90 = 0.84375, which is
not the mean of the match per-90s ((0.625 + 1.5) / 2 = 1.0625).
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from gradfit.errors import DataError
from gradfit.vaep.ratings import player_match, player_season

# (game, team, player, offensive, defensive)
ACTIONS = [
    (1, "A", 1, 0.5, 0.0),
    (1, "A", 1, 0.25, 0.0),
    (1, "B", 3, 0.375, 0.0),
    (1, "A", 1, 0.0, -0.125),
    (1, "A", 2, 0.125, 0.125),
    (1, "B", 5, 1.0, 0.0),
    (1, "B", None, 2.0, 0.0),
    (1, "B", 3, 0.0, 0.125),
    (2, "A", 1, 0.375, 0.0),
    (2, "B", 3, 0.0625, 0.0),
    (2, "A", 1, 0.0, 0.125),
]
# (game, team, player, name, minutes)
MINUTES = [
    (1, "A", 1, "One", 90.0),
    (1, "A", 2, "Two", 45.0),
    (1, "B", 3, "Three", 60.0),
    (1, "A", 4, "Four", 30.0),
    (2, "A", 1, "One", 30.0),
    (2, "B", 3, "Three", 90.0),
]
TEAM_ID = {"A": 10, "B": 20}


def actions_table(ids=int) -> pd.DataFrame:
    rows = [
        {
            "game_id": ids(g),
            "team_id": ids(TEAM_ID[t]),
            "player_id": None if p is None else ids(p),
            "offensive_value": o,
            "defensive_value": d,
            "vaep_value": o + d,
        }
        for g, t, p, o, d in ACTIONS
    ]
    frame = pd.DataFrame(rows)
    # ids stay what they were given as (pandas would make int ids with a missing one float: see the CSV test below)
    frame["player_id"] = pd.Series([r["player_id"] for r in rows], dtype=object)
    return frame


def minutes_table(ids=str) -> pd.DataFrame:
    rows = [
        {"game_id": ids(g), "team_id": ids(TEAM_ID[t]), "player_id": ids(p), "player_name": n, "minutes_played": m}
        for g, t, p, n, m in MINUTES
    ]
    return pd.DataFrame(rows)


def row(table: pd.DataFrame, player, game=None) -> pd.Series:
    sel = table["player_id"].astype(str) == str(player)
    if game is not None:
        sel &= table["game_id"].astype(str) == str(game)
    assert sel.sum() == 1, table
    return table[sel].iloc[0]


# (game, player) -> (actions, offensive, defensive, vaep, minutes or NaN), by hand
MATCH = {
    (1, 1): (3, 0.75, -0.125, 0.625, 90.0),
    (1, 2): (1, 0.125, 0.125, 0.25, 45.0),
    (1, 3): (2, 0.375, 0.125, 0.5, 60.0),
    (1, 4): (0, 0.0, 0.0, 0.0, 30.0),
    (1, 5): (1, 1.0, 0.0, 1.0, np.nan),
    (2, 1): (2, 0.375, 0.125, 0.5, 30.0),
    (2, 3): (1, 0.0625, 0.0, 0.0625, 90.0),
}


def _check_match(table: pd.DataFrame) -> None:
    assert len(table) == len(MATCH)
    for (game, player), (n, off, dfn, total, minutes) in MATCH.items():
        r = row(table, player, game)
        assert r["actions"] == n
        assert (r["offensive_value"], r["defensive_value"], r["vaep_value"]) == (off, dfn, total)
        if np.isnan(minutes):
            assert np.isnan(r["minutes_played"])
            assert np.isnan([r["offensive_value_per90"], r["defensive_value_per90"], r["vaep_value_per90"]]).all()
        else:
            assert r["minutes_played"] == minutes
            assert r["vaep_value_per90"] == pytest.approx(total / minutes * 90, rel=1e-12)
            assert r["offensive_value_per90"] == pytest.approx(off / minutes * 90, rel=1e-12)
            assert r["defensive_value_per90"] == pytest.approx(dfn / minutes * 90, rel=1e-12)


def test_player_match_sums_counts_and_per90():
    table = player_match(actions_table(), minutes_table())
    _check_match(table)
    # the action without a player is in no row: the values of the rows add up to all the others
    assert table["vaep_value"].sum() == sum(o + d for _, _, p, o, d in ACTIONS if p is not None)
    # a player with minutes but no action is rated 0 (not missing); names come from the minutes table
    four = row(table, 4, 1)
    assert four["vaep_value_per90"] == 0.0 and four["player_name"] == "Four" and four["team_id"] == "10"
    # sorted by game, best first within a game
    assert table["game_id"].tolist() == ["1"] * 5 + ["2"] * 2
    assert table[table["game_id"] == "1"]["vaep_value"].is_monotonic_decreasing


def test_player_match_without_minutes_has_sums_but_no_per90():
    table = player_match(actions_table())
    assert len(table) == 6  # players with actions only: player 4 is unknown without the minutes
    one = row(table, 1, 1)
    assert one["actions"] == 3 and one["vaep_value"] == 0.625
    assert table["minutes_played"].isna().all() and table["vaep_value_per90"].isna().all()


def test_player_season_sums_minutes_and_per90_from_totals():
    season = player_season(player_match(actions_table(), minutes_table()))
    assert len(season) == 5
    one = row(season, 1)
    assert (one["actions"], one["vaep_value"], one["minutes_played"], one["games"]) == (5, 1.125, 120.0, 2)
    assert (one["offensive_value"], one["defensive_value"]) == (1.125, 0.0)
    assert one["vaep_value_per90"] == pytest.approx(1.125 / 120 * 90, rel=1e-12)  # 0.84375
    assert one["vaep_value_per90"] != pytest.approx((0.625 / 90 * 90 + 0.5 / 30 * 90) / 2)  # not the mean, 1.0625
    three = row(season, 3)
    assert (three["actions"], three["vaep_value"], three["minutes_played"], three["games"]) == (3, 0.5625, 150.0, 2)
    assert three["vaep_value_per90"] == pytest.approx(0.5625 / 150 * 90, rel=1e-12)
    assert three["team_id"] == "20" and three["player_name"] == "Three"
    four = row(season, 4)
    assert (four["games"], four["minutes_played"], four["vaep_value_per90"]) == (1, 30.0, 0.0)
    five = row(season, 5)  # actions in a game the minutes table does not cover
    assert five["vaep_value"] == 1.0 and five["games"] == 1
    assert np.isnan(five["minutes_played"]) and np.isnan(five["vaep_value_per90"])
    assert season["vaep_value"].is_monotonic_decreasing  # best first


def test_player_season_of_a_player_who_changed_teams():
    acts = pd.DataFrame(
        {
            "game_id": [1, 2],
            "team_id": [10, 30],
            "player_id": [7, 7],
            "offensive_value": [0.5, 0.25],
            "defensive_value": [0.0, 0.0],
            "vaep_value": [0.5, 0.25],
        }
    )
    mins = pd.DataFrame({"game_id": [1, 2], "team_id": [10, 30], "player_id": [7, 7], "minutes_played": [90.0, 45.0]})
    season = player_season(player_match(acts, mins))
    assert len(season) == 1
    r = season.iloc[0]
    assert r["team_id"] == "10,30" and r["games"] == 2 and r["minutes_played"] == 135.0
    assert r["vaep_value_per90"] == pytest.approx(0.75 / 135 * 90)


@pytest.mark.parametrize(
    "action_ids,minute_ids", [(int, str), (str, int), (np.int64, str), (str, str)], ids=lambda f: f.__name__
)
def test_ids_of_different_types_still_join(action_ids, minute_ids):
    table = player_match(actions_table(action_ids), minutes_table(minute_ids))
    _check_match(table)


def _via_csv(frame: pd.DataFrame) -> pd.DataFrame:
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    buf.seek(0)
    return pd.read_csv(buf)


def test_csv_read_ids_with_a_missing_player_still_join():
    """Both tables through CSV (as `gradfit vaep rate` reads a .csv): the action without a player makes pandas read
    player_id as float in the actions and as int in the minutes."""
    acts, mins = _via_csv(actions_table()), _via_csv(minutes_table())
    assert acts["player_id"].dtype == float and mins["player_id"].dtype == np.int64
    _check_match(player_match(acts, mins))


def test_season_per90_does_not_divide_uncovered_games_by_covered_minutes():
    """Player 5 gets 90 minutes in game 2 (covered) on top of game 1's 1.0 without a minutes record."""
    acts = pd.concat(
        [actions_table(), pd.DataFrame([{"game_id": 2, "team_id": 20, "player_id": 5, "offensive_value": 0.25,
                                          "defensive_value": 0.0, "vaep_value": 0.25}])],
        ignore_index=True,
    )  # fmt: skip
    mins = pd.concat(
        [minutes_table(), pd.DataFrame([{"game_id": "2", "team_id": "20", "player_id": "5", "minutes_played": 90.0}])],
        ignore_index=True,
    )
    five = row(player_season(player_match(acts, mins)), 5)
    # the sums cover both games; the per-90 figures only the game with minutes: 0.25 / 90 * 90, not 1.25 / 90 * 90
    assert (five["vaep_value"], five["offensive_value"], five["games"], five["minutes_played"]) == (1.25, 1.25, 2, 90.0)
    assert five["vaep_value_per90"] == pytest.approx(0.25, rel=1e-12)
    assert five["offensive_value_per90"] == pytest.approx(0.25, rel=1e-12)
    assert five["defensive_value_per90"] == 0.0
    # the other players are as before
    one = row(player_season(player_match(acts, mins)), 1)
    assert one["vaep_value_per90"] == pytest.approx(1.125 / 120 * 90, rel=1e-12)


def test_minutes_of_games_that_were_not_rated_are_left_out():
    acts = actions_table()
    table = player_match(acts[acts["game_id"] == 1], minutes_table())
    assert set(table["game_id"]) == {"1"}
    assert row(player_season(table), 1)["minutes_played"] == 90.0


@pytest.mark.parametrize(
    "column", ["game_id", "team_id", "player_id", "offensive_value", "defensive_value", "vaep_value"]
)
def test_actions_missing_a_column_is_a_data_error(column):
    with pytest.raises(DataError, match=f"actions: missing column.*{column}"):
        player_match(actions_table().drop(columns=[column]), minutes_table())


@pytest.mark.parametrize("column", ["game_id", "team_id", "player_id", "minutes_played"])
def test_minutes_missing_a_column_is_a_data_error(column):
    with pytest.raises(DataError, match=f"players: missing column.*{column}.*gradfit vaep convert"):
        player_match(actions_table(), minutes_table().drop(columns=[column]))
