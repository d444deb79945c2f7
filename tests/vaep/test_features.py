"""Features, labels and values against socceraction 1.5.3's own output on the three shipped matches.

The fixtures were made by tests/vaep/fixtures/make_socceraction_fixtures.py in socceraction's environment,
from socceraction's SPADL actions (actions_kloppy.parquet), which are also the input here: this checks the
feature, label and value functions, not the conversion (tests/vaep/test_spadl.py does that).
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from gradfit.errors import DataError
from gradfit.vaep.arrays import actions_arrays
from gradfit.vaep.features import feature_names, features
from gradfit.vaep.formula import values
from gradfit.vaep.labels import labels

FIX = Path(__file__).parent / "fixtures" / "socceraction"


@pytest.fixture(scope="module")
def actions():
    return pd.read_parquet(FIX / "actions_kloppy.parquet")


@pytest.fixture(scope="module")
def arrays(actions):
    return jax.device_put(actions_arrays(actions))


def own_goal_windows(actions, horizon):
    """Rows whose next `horizon` actions (same game) include an own goal: where we count it and socceraction not."""
    own = np.flatnonzero((actions["result_name"] == "owngoal").to_numpy())
    game = actions["game_id"].to_numpy()
    rows = set()
    for i in own:
        rows |= {j for j in range(max(0, i - horizon + 1), i + 1) if game[j] == game[i]}
    return np.array(sorted(rows), int)


def test_feature_columns_are_socceractions(actions):
    reference = pd.read_parquet(FIX / "features.parquet")
    assert feature_names(3) == [c for c in reference.columns if c not in ("game_id", "action_id")]


def test_features_match_socceraction(actions, arrays):
    reference = pd.read_parquet(FIX / "features.parquet")
    names = feature_names(3)
    ours = np.asarray(features(arrays, 3))
    theirs = reference[names].to_numpy(np.float64)
    close = np.isclose(ours, theirs, rtol=1e-5, atol=1e-4)
    bad_rows = np.flatnonzero(~close.all(axis=1))
    # the goal-score columns differ after an own goal (counted here, not by socceraction): only there
    goal_cols = [names.index(c) for c in ("goalscore_team", "goalscore_opponent", "goalscore_diff")]
    assert close[:, [j for j in range(len(names)) if j not in goal_cols]].all()
    own = actions.index[actions["result_name"] == "owngoal"].to_numpy()
    game = actions["game_id"].to_numpy()
    after_own_goal = np.array([any(game[i] == game[o] and i > o for o in own) for i in range(len(actions))])
    assert set(bad_rows) == set(np.flatnonzero(after_own_goal)) and len(own) == 2


@pytest.mark.parametrize("horizon,cols", [(10, ["scores", "concedes"]), (5, ["scores_5", "concedes_5"])])
def test_labels_match_socceraction_but_for_own_goals(actions, arrays, horizon, cols):
    reference = pd.read_parquet(FIX / "labels.parquet")[cols].to_numpy()
    ours = np.asarray(labels(arrays, horizon))
    differ = np.flatnonzero((ours != reference).any(axis=1))
    windows = own_goal_windows(actions, horizon)
    assert set(differ) <= set(windows) and len(differ) > 0
    # where they differ, we say "a goal follows" and socceraction does not
    assert (ours[differ].sum() > reference[differ].sum()) and reference.sum() > 0


def test_values_match_socceraction(actions, arrays):
    reference = pd.read_parquet(FIX / "values.parquet")
    ps, pc = (jnp.asarray(reference[c].to_numpy(), jnp.float32) for c in ("p_scores", "p_concedes"))
    ours = np.asarray(values(arrays, ps, pc))
    theirs = reference[["offensive_value", "defensive_value", "vaep_value"]].to_numpy()
    differ = set(np.flatnonzero(np.abs(ours - theirs).max(axis=1) > 1e-6))
    # only the action after each own goal differs: a new phase here (as after any goal), not in socceraction
    own = np.flatnonzero((actions["result_name"] == "owngoal").to_numpy())
    game = actions["game_id"].to_numpy()
    after = {i + 1 for i in own if i + 1 < len(actions) and game[i + 1] == game[i]}
    assert differ <= after and len(own) == 2


def test_games_are_independent(actions):
    """A competition in one call gives each game what that game alone gives."""
    whole = np.asarray(features(jax.device_put(actions_arrays(actions)), 3))
    parts = [
        np.asarray(features(jax.device_put(actions_arrays(g)), 3)) for _, g in actions.groupby("game_id", sort=False)
    ]
    assert np.allclose(whole, np.concatenate(parts), rtol=1e-6, atol=1e-6)


def test_rows_out_of_order_are_rejected(actions):
    shuffled = actions.iloc[[1, 0, *range(2, len(actions))]]
    with pytest.raises(DataError, match="row 1 is out of order"):
        actions_arrays(shuffled)
    with pytest.raises(DataError, match="missing SPADL column"):
        actions_arrays(actions.drop(columns=["start_x"]))
