"""VAEP values and labels on hand-made action sequences, against values worked out by hand from the rules."""

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from gradfit.vaep.arrays import actions_arrays
from gradfit.vaep.formula import CORNER_PRIOR, PENALTY_PRIOR, values
from gradfit.vaep.labels import labels
from gradfit.vaep.spadl import ACTION_TYPES, RESULTS


def table(rows, game="g1", home="A"):
    """rows: (team, type name, result name, time seconds)."""
    frame = pd.DataFrame(
        [
            {
                "game_id": r[4] if len(r) > 4 else game,
                "period_id": 1,
                "time_seconds": float(r[3]),
                "team_id": r[0],
                "type_id": ACTION_TYPES.index(r[1]),
                "result_id": RESULTS.index(r[2]),
                "bodypart_id": 0,
                "start_x": 50.0,
                "start_y": 34.0,
                "end_x": 60.0,
                "end_y": 30.0,
                "home_team_id": home,
            }
            for r in rows
        ]
    )
    return actions_arrays(frame)


def vaep(rows, ps, pc):
    out = values(table(rows), jnp.asarray(ps, jnp.float32), jnp.asarray(pc, jnp.float32))
    return np.asarray(out)


def test_same_team_and_possession_change():
    rows = [("A", "pass", "success", 0), ("A", "pass", "fail", 2), ("B", "interception", "success", 3)]
    ps, pc = [0.10, 0.30, 0.20], [0.05, 0.02, 0.04]
    v = vaep(rows, ps, pc)
    # first action of the game is its own predecessor
    assert v[0] == pytest.approx([0.0, 0.0, 0.0], abs=1e-7)
    # same team: +0.30 - 0.10 offensive, -(0.02 - 0.05) defensive
    assert v[1] == pytest.approx([0.20, 0.03, 0.23], abs=1e-6)
    # B after A: B's chance before = A's chance of conceding (0.02), B's risk before = A's chance (0.30)
    assert v[2] == pytest.approx([0.20 - 0.02, -(0.04 - 0.30), 0.18 + 0.26], abs=1e-6)


def test_pause_goal_and_set_piece_rules():
    rows = [
        ("A", "pass", "success", 0),
        ("A", "pass", "success", 20),  # 20 s later: a new phase
        ("A", "shot", "success", 21),  # a goal
        ("B", "pass", "success", 22),  # kick-off after the goal: a new phase
        ("B", "corner_crossed", "success", 25),  # corner: the prior replaces the predecessor's chance
        ("B", "shot_penalty", "success", 30),  # penalty: likewise
    ]
    ps = [0.1, 0.2, 0.5, 0.01, 0.06, 0.9]
    pc = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06]
    v = vaep(rows, ps, pc)
    assert v[1, :2] == pytest.approx([0.2, -0.02], abs=1e-6)
    assert v[3, :2] == pytest.approx([0.01, -0.04], abs=1e-6)
    assert v[4, 0] == pytest.approx(0.06 - CORNER_PRIOR, abs=1e-6)
    assert v[4, 1] == pytest.approx(-(0.05 - 0.04), abs=1e-6)  # defensive value keeps the usual rule
    assert v[5, 0] == pytest.approx(0.9 - PENALTY_PRIOR, abs=1e-6)


def test_games_do_not_leak_into_each_other():
    rows = [("A", "pass", "success", 0, "g1"), ("A", "pass", "success", 1, "g1"), ("A", "pass", "success", 2, "g2")]
    v = vaep(rows, [0.1, 0.2, 0.3], [0.0, 0.0, 0.0])
    assert v[2, 0] == pytest.approx(0.0, abs=1e-7)  # first of g2: own predecessor, not g1's last


def test_labels_window_own_goals_and_game_end():
    rows = [
        ("A", "pass", "success", 0),
        ("A", "pass", "success", 1),
        ("B", "pass", "fail", 2),
        ("A", "shot", "success", 3),  # goal by A
        ("B", "pass", "success", 10),
        ("B", "pass", "success", 11),
        ("B", "shot", "owngoal", 12),  # an own goal by B (a shot with result owngoal): a goal for A
    ]
    y = np.asarray(labels(table(rows), horizon=3))
    scores, concedes = y[:, 0], y[:, 1]
    # horizon 3: an action and the two after it
    assert scores.tolist() == [False, True, False, True, False, False, False]
    assert concedes.tolist() == [False, False, True, False, True, True, True]


def test_labels_stop_at_the_end_of_a_game():
    rows = [("A", "pass", "success", 0, "g1"), ("A", "pass", "success", 1, "g2"), ("A", "shot", "success", 2, "g2")]
    y = np.asarray(labels(table(rows), horizon=10))
    assert y[:, 0].tolist() == [False, True, True]


def test_an_own_goal_of_any_type_counts_for_the_other_team():
    rows = [("A", "pass", "success", 0), ("B", "pass", "success", 1), ("B", "bad_touch", "owngoal", 2)]
    y = np.asarray(labels(table(rows), horizon=2))
    # A's pass: B's own goal is two actions later, outside horizon 2; B's pass and B's own goal: B concedes
    assert y.tolist() == [[False, False], [False, True], [False, True]]
    y3 = np.asarray(labels(table(rows), horizon=3))
    assert y3[0].tolist() == [True, False]
