"""gradfit's kloppy -> SPADL conversion against socceraction's kloppy converter, and on a Wyscout v2 match.

The reference is tests/vaep/fixtures/socceraction/actions_kloppy.parquet (socceraction 1.5.3 with kloppy 3.15,
made by fixtures/make_socceraction_fixtures.py); gradfit runs kloppy 3.19. The only row differences allowed
are the documented ones ("Differences from socceraction" in gradfit.vaep.spadl), and they are counted.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kloppy import statsbomb, wyscout

from gradfit.errors import GradfitError
from gradfit.vaep.spadl import (
    ACTION_TYPES,
    BODYPARTS,
    FIELD_LENGTH,
    FIELD_WIDTH,
    NAME_COLUMNS,
    RESULTS,
    SPADL_COLUMNS,
    actions_from_kloppy,
)

HERE = Path(__file__).parent
STATSBOMB = HERE / "data" / "statsbomb"
WYSCOUT = HERE / "data" / "wyscout" / "2499773.json.gz"
REFERENCE = HERE / "fixtures" / "socceraction" / "actions_kloppy.parquet"
GAME_IDS = (15946, 15986, 3788741)

# Documented differences, counted on the three matches
SECOND_HALF_ACTIONS = 3328  # difference 1: periods 2 and 4 mirrored (teams do not switch ends)
FIRST_HALF_CLEARANCES = 1  # ...and a clearance that ends a first half ends at the second half's kick-off

EXACT = ("game_id", "period_id", "team_id", "player_id", "type_id", "result_id", "bodypart_id", "action_id")
COORDINATES = (("start_x", FIELD_LENGTH), ("start_y", FIELD_WIDTH), ("end_x", FIELD_LENGTH), ("end_y", FIELD_WIDTH))


def _load_statsbomb(game_id: int):
    return statsbomb.load(
        event_data=str(STATSBOMB / "events" / f"{game_id}.json.gz"),
        lineup_data=str(STATSBOMB / "lineups" / f"{game_id}.json.gz"),
    )


def _load_wyscout():
    return wyscout.load(event_data=str(WYSCOUT), data_version="V2")


@pytest.fixture(scope="module")
def datasets() -> dict:
    return {game_id: _load_statsbomb(game_id) for game_id in GAME_IDS}


@pytest.fixture(scope="module")
def ours(datasets) -> pd.DataFrame:
    return pd.concat([actions_from_kloppy(datasets[g], g) for g in GAME_IDS], ignore_index=True)


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return pd.read_parquet(REFERENCE)


@pytest.fixture(scope="module")
def wyscout_actions() -> tuple:
    dataset = _load_wyscout()
    return dataset, actions_from_kloppy(dataset, 2499773)


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Row-wise equality where a missing value equals a missing value (None, NaN or pandas' NA)."""
    a_na, b_na = a.isna().to_numpy(), b.isna().to_numpy()
    equal = a.astype(object).to_numpy() == b.astype(object).to_numpy()
    return np.where(a_na | b_na, a_na & b_na, equal)


def _expected_coordinates(reference: pd.DataFrame) -> dict[str, np.ndarray]:
    """The reference's coordinates with difference 1 applied: its periods 2 and 4 mirrored."""
    mirrored = reference["period_id"].isin([2, 4]).to_numpy()
    return {c: np.where(mirrored, size - reference[c].to_numpy(), reference[c].to_numpy()) for c, size in COORDINATES}


def test_columns_and_dtypes_are_socceractions(ours):
    assert tuple(ours.columns) == SPADL_COLUMNS + NAME_COLUMNS
    ints = ("game_id", "period_id", "type_id", "result_id", "bodypart_id", "action_id")
    floats = ("time_seconds", "start_x", "start_y", "end_x", "end_y")
    objects = ("original_event_id", "team_id", "player_id", *NAME_COLUMNS)
    assert all(ours[c].dtype == np.int64 for c in ints)
    assert all(ours[c].dtype == np.float64 for c in floats)
    assert all(ours[c].dtype == object for c in objects)


def test_vocabulary_matches_socceractions_ids(reference):
    for id_col, name_col, vocabulary in (
        ("type_id", "type_name", ACTION_TYPES),
        ("result_id", "result_name", RESULTS),
        ("bodypart_id", "bodypart_name", BODYPARTS),
    ):
        pairs = reference[[id_col, name_col]].drop_duplicates()
        assert all(vocabulary[i] == name for i, name in zip(pairs[id_col], pairs[name_col], strict=True))
    assert len(ACTION_TYPES) == 23 and len(RESULTS) == 6 and len(BODYPARTS) == 6


def test_same_actions_in_the_same_order(ours, reference):
    assert len(ours) == len(reference) == 6894
    assert _same(ours["original_event_id"], reference["original_event_id"]).all()
    for column in (*EXACT, *NAME_COLUMNS):
        assert _same(ours[column], reference[column]).all(), column
    np.testing.assert_allclose(ours["time_seconds"], reference["time_seconds"], rtol=0, atol=1e-6)


def test_coordinates_differ_only_as_documented(ours, reference):
    expected = _expected_coordinates(reference)
    off = np.zeros(len(ours), dtype=bool)
    for column, _ in COORDINATES:
        off |= np.abs(ours[column].to_numpy() - expected[column]) > 1e-6
    # difference 1 mirrors every second-half action...
    assert reference["period_id"].isin([2, 4]).sum() == SECOND_HALF_ACTIONS
    # ...and moves the end of a clearance that ends a first half to the second half's kick-off (its next action)
    assert off.sum() == FIRST_HALF_CLEARANCES
    for i in np.flatnonzero(off):
        row, after = ours.iloc[i], ours.iloc[i + 1]
        assert row["type_name"] == "clearance" and row["period_id"] == 1 and after["period_id"] == 2
        assert (row["end_x"], row["end_y"]) == (after["start_x"], after["start_y"])
        assert np.allclose(
            ours.loc[i, ["start_x", "start_y"]].astype(float), [expected["start_x"][i], expected["start_y"][i]]
        )


def test_raw_coordinate_differences_are_second_half_only(ours, reference):
    raw_off = np.zeros(len(ours), dtype=bool)
    for column, _ in COORDINATES:
        raw_off |= np.abs(ours[column].to_numpy() - reference[column].to_numpy()) > 1e-6
    second_half = reference["period_id"].isin([2, 4]).to_numpy()
    assert (raw_off & ~second_half).sum() == FIRST_HALF_CLEARANCES
    assert raw_off[second_half].mean() > 0.99  # mirroring moves all but points on the pitch's centre


def test_home_team_attacks_left_to_right_in_both_halves(ours, datasets):
    # Shots are taken near the goal a team attacks: the home team's at x > 52.5 in every period.
    for game_id, dataset in datasets.items():
        home = dataset.metadata.teams[0].team_id
        shots = ours[(ours["game_id"] == game_id) & ours["type_name"].isin(["shot", "shot_freekick", "shot_penalty"])]
        for (period, is_home), group in shots.groupby(["period_id", shots["team_id"] == home]):
            assert (group["start_x"].median() > FIELD_LENGTH / 2) == is_home, (game_id, period, is_home)


def _assert_valid_spadl(actions: pd.DataFrame, team_ids: set) -> None:
    assert actions["type_id"].between(0, len(ACTION_TYPES) - 1).all()
    assert (actions["type_name"] != "non_action").all()
    assert actions["result_id"].between(0, len(RESULTS) - 1).all()
    assert actions["bodypart_id"].between(0, len(BODYPARTS) - 1).all()
    for column, size in COORDINATES:
        assert actions[column].between(0, size).all(), column
    assert set(actions["team_id"]) <= team_ids
    assert (actions["action_id"].to_numpy() == np.arange(len(actions))).all()
    assert actions["period_id"].is_monotonic_increasing
    for _, period in actions.groupby("period_id"):
        assert period["time_seconds"].is_monotonic_increasing
        assert (period["time_seconds"] >= 0).all()


def test_statsbomb_output_is_valid_spadl(ours, datasets):
    for game_id, dataset in datasets.items():
        teams = {t.team_id for t in dataset.metadata.teams}
        _assert_valid_spadl(ours[ours["game_id"] == game_id].reset_index(drop=True), teams)


def test_wyscout_output_is_valid_spadl(wyscout_actions):
    dataset, actions = wyscout_actions
    assert tuple(actions.columns) == SPADL_COLUMNS + NAME_COLUMNS
    assert len(actions) > 1000
    _assert_valid_spadl(actions, {t.team_id for t in dataset.metadata.teams})
    assert {"pass", "shot", "tackle", "dribble", "throw_in", "corner_crossed"} <= set(actions["type_name"])


def test_wyscout_home_team_attacks_left_to_right(wyscout_actions):
    dataset, actions = wyscout_actions
    shots = actions[actions["type_name"].str.startswith("shot")]
    home = shots["team_id"] == dataset.metadata.teams[0].team_id
    for _, period in shots.groupby("period_id"):
        in_period = home.loc[period.index]
        if in_period.any():
            assert period.loc[in_period, "start_x"].median() > FIELD_LENGTH / 2
        if (~in_period).any():
            assert period.loc[~in_period, "start_x"].median() < FIELD_LENGTH / 2


def test_dribbles_join_consecutive_actions(ours):
    dribbles = np.flatnonzero(ours["type_name"].to_numpy() == "dribble")
    dribbles = dribbles[ours["original_event_id"].isna().to_numpy()[dribbles]]  # inserted, not kloppy's carries
    assert len(dribbles) > 0
    before, after = ours.iloc[dribbles - 1], ours.iloc[dribbles + 1]
    inserted = ours.iloc[dribbles]
    np.testing.assert_array_equal(inserted["start_x"].to_numpy(), before["end_x"].to_numpy())
    np.testing.assert_array_equal(inserted["end_y"].to_numpy(), after["start_y"].to_numpy())
    np.testing.assert_array_equal(inserted["player_id"].to_numpy(), after["player_id"].to_numpy())


def test_not_a_kloppy_event_dataset_is_a_gradfit_error():
    with pytest.raises(GradfitError, match="game 7: expected a kloppy EventDataset"):
        actions_from_kloppy(object(), 7)


def test_action_without_coordinates_is_named():
    dataset = _load_wyscout()
    index, event = next((i, e) for i, e in enumerate(dataset.events) if e.event_type.name == "PASS" and e.result)
    dataset.records[index] = dataclasses.replace(event, coordinates=None)
    with pytest.raises(GradfitError, match=f"event {event.event_id} \\(.*\\) has no coordinates"):
        actions_from_kloppy(dataset, 2499773)


def test_no_events_gives_an_empty_table(wyscout_actions):
    dataset, _ = wyscout_actions
    empty = actions_from_kloppy(dataset.filter(lambda event: False), "g")
    assert len(empty) == 0
    assert tuple(empty.columns) == SPADL_COLUMNS + NAME_COLUMNS
