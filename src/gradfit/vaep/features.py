"""The standard VAEP game-state features, as one JAX function over a whole competition.

A game state is the current action a0 and the nb_prev - 1 actions before it in the same game and period (at
a period's start, missing earlier actions repeat the period's first action). The state is seen from the
acting team: when a0's team is the away team, every coordinate of the state is mirrored, so that the team
of a0 always attacks left to right. The columns, their names and their order are socceraction 1.5's
default feature set (`xfns_default`: action type, result, type x result, body part, time, start and end
location, polar coordinates to the opponent's goal, movement, team, time delta, space delta, goal score),
checked against socceraction's own output on the shipped matches (tests/vaep/test_features.py).

Everything is a gather or an elementwise operation over all actions at once; the only scan is the
per-game running goal count (a cumulative sum).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from gradfit.vaep.arrays import TICKS, Actions
from gradfit.vaep.spadl import ACTION_TYPES, BODYPARTS, FIELD_LENGTH, FIELD_WIDTH, RESULTS

# the three shot types and the results that make a goal (SPADL: a goal is a successful shot)
SHOTS = tuple(ACTION_TYPES.index(t) for t in ("shot", "shot_penalty", "shot_freekick"))
SUCCESS = RESULTS.index("success")
OWNGOAL = RESULTS.index("owngoal")
# body part groups of socceraction's `bodypart_onehot`: left and right foot count as foot; head/other
# gathers head, other and head/other
_FOOT = tuple(BODYPARTS.index(b) for b in ("foot", "foot_left", "foot_right"))
_HEAD_OTHER = tuple(BODYPARTS.index(b) for b in ("head", "other", "head/other"))
_BODY_GROUPS = (
    ("foot", _FOOT),
    ("head", (BODYPARTS.index("head"),)),
    ("other", (BODYPARTS.index("other"),)),
    ("head/other", _HEAD_OTHER),
)
_PERIOD_START_MINUTE = np.array([0, 0, 45, 90, 105, 120], np.float32)  # indexed by period_id


def feature_names(nb_prev: int = 3) -> list[str]:
    """Column names in the order `features` returns them (socceraction's names)."""
    states = range(nb_prev)

    def per_state(cols: list[str]) -> list[str]:
        return [f"{c}_a{i}" for i in states for c in cols]

    types = [f"actiontype_{t}" for t in ACTION_TYPES]
    results = [f"result_{r}" for r in RESULTS]
    names = per_state(types) + per_state(results) + per_state([f"{t}_{r}" for t in types for r in results])
    names += per_state([f"bodypart_{b}" for b, _ in _BODY_GROUPS])
    names += per_state(["period_id", "time_seconds", "time_seconds_overall"])
    names += per_state(["start_x", "start_y"]) + per_state(["end_x", "end_y"])
    names += per_state(["start_dist_to_goal", "start_angle_to_goal"])
    names += per_state(["end_dist_to_goal", "end_angle_to_goal"]) + per_state(["dx", "dy", "movement"])
    names += [f"team_{i}" for i in range(1, nb_prev)] + [f"time_delta_{i}" for i in range(1, nb_prev)]
    names += [f"{c}_a0{i}" for i in range(1, nb_prev) for c in ("dx", "dy", "mov")]
    return names + ["goalscore_team", "goalscore_opponent", "goalscore_diff"]


def segment_start(key: jnp.ndarray) -> jnp.ndarray:
    """For each row, the index of the first row of its run of equal `key` values (rows of a group together)."""
    idx = jnp.arange(key.shape[0])
    new = jnp.concatenate([jnp.ones(1, bool), key[1:] != key[:-1]])
    return jax.lax.cummax(jnp.where(new, idx, 0))


def segment_end(key: jnp.ndarray) -> jnp.ndarray:
    """For each row, the index of the last row of its run of equal `key` values."""
    return (key.shape[0] - 1 - segment_start(key[::-1]))[::-1]


def is_goal(a: Actions) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(goal, own goal) per action: a successful shot; any action with result owngoal.

    socceraction 1.5 counts an own goal only on a shot-type action, but SPADL records own goals as
    bad_touch/owngoal, so its labels and goal scores never see them. Here an own goal counts (for the other
    team) whatever its type; on the shipped matches that changes exactly the rows near the two own goals
    (tests/vaep/test_features.py checks that nothing else differs).
    """
    shot = jnp.isin(a.type, jnp.asarray(SHOTS))
    return shot & (a.result == SUCCESS), a.result == OWNGOAL


@partial(jax.jit, static_argnames=("nb_prev", "dtype"))
def features(a: Actions, nb_prev: int = 3, dtype=jnp.float32) -> jnp.ndarray:
    """The (n actions, len(feature_names(nb_prev))) feature matrix."""
    n = a.game.shape[0]
    idx = jnp.arange(n)
    # game and period together delimit a state's history (socceraction groups by game_id, period_id)
    period_key = a.game * 8 + a.period
    first = segment_start(period_key)
    # every column of every state at once: (n, nb_prev) gathers, and blocks laid out state-major, which is
    # socceraction's column order (all of a0's columns of a kind, then a1's, ...); few, wide operations keep
    # XLA's compile time short
    prev = jnp.maximum(idx[:, None] - jnp.arange(nb_prev)[None, :], first[:, None])
    away = ~a.home[:, None]  # a0's team is away: mirror the whole state
    n_states = nb_prev

    def state_cols(*arrays):  # k arrays of (n, nb_prev) -> (n, nb_prev * k), state-major
        return jnp.stack([jnp.asarray(v, jnp.float32) for v in arrays], axis=2).reshape(n, -1).astype(dtype)

    sx, sy, ex, ey = (a_col[prev] for a_col in (a.start_x, a.start_y, a.end_x, a.end_y))
    sx, ex = (jnp.where(away, FIELD_LENGTH - v, v) for v in (sx, ex))
    sy, ey = (jnp.where(away, FIELD_WIDTH - v, v) for v in (sy, ey))
    types, results, bodies = a.type[prev], a.result[prev], a.bodypart[prev]
    periods, ticks = a.period[prev], a.time[prev]
    times = ticks.astype(jnp.float32) / TICKS

    def onehot(codes, k):
        return jax.nn.one_hot(codes, k, dtype=dtype).reshape(n, n_states * k)

    body = jnp.stack([jnp.isin(bodies, jnp.asarray(g)) for _, g in _BODY_GROUPS], axis=2)
    minute0 = jnp.asarray(_PERIOD_START_MINUTE)
    blocks = [
        onehot(types, len(ACTION_TYPES)),
        onehot(results, len(RESULTS)),
        onehot(types * len(RESULTS) + results, len(ACTION_TYPES) * len(RESULTS)),
        body.reshape(n, -1).astype(dtype),
        state_cols(periods, times, minute0[jnp.clip(periods, 0, 5)] * 60 + times),
        state_cols(sx, sy),
        state_cols(ex, ey),
        state_cols(*_polar(sx, sy)),
        state_cols(*_polar(ex, ey)),
        state_cols(ex - sx, ey - sy, jnp.hypot(ex - sx, ey - sy)),
    ]
    if nb_prev > 1:
        teams = a.team[prev]
        blocks.append((teams[:, 1:] == teams[:, :1]).astype(dtype))
        # time deltas from integer ticks: exact, where a float32 difference of two match times is not
        blocks.append(((ticks[:, :1] - ticks[:, 1:]).astype(jnp.float32) / TICKS).astype(dtype))
        dx, dy = ex[:, 1:] - sx[:, :1], ey[:, 1:] - sy[:, :1]
        blocks.append(state_cols(dx, dy, jnp.hypot(dx, dy)))
    blocks.append(jnp.stack([jnp.asarray(v, jnp.float32) for v in goalscore(a)], axis=1).astype(dtype))
    return jnp.concatenate(blocks, axis=1)


def _polar(x, y):
    """Distance and angle to the opponent's goal centre (x = 105, y = 34), angle in [0, pi/2]."""
    dx, dy = jnp.abs(FIELD_LENGTH - x), jnp.abs(FIELD_WIDTH / 2 - y)
    # socceraction takes nan_to_num(arctan(dy / dx)): pi/2 on the goal line, 0 at the goal centre itself
    angle = jnp.where(dx > 0, jnp.arctan(dy / jnp.where(dx > 0, dx, 1.0)), jnp.where(dy > 0, jnp.pi / 2, 0.0))
    return jnp.hypot(dx, dy), angle


def goalscore(a: Actions) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Goals for the acting team, for its opponent, and the difference, before each action of its game."""
    goal, own = is_goal(a)
    first = segment_start(a.game)
    team_a = a.team == a.team[first]  # "team A" is the team of the game's first action
    for_a = ((goal & team_a) | (own & ~team_a)).astype(jnp.int32)
    for_b = ((goal & ~team_a) | (own & team_a)).astype(jnp.int32)
    # per-game running totals, excluding the action itself
    cum_a, cum_b = jnp.cumsum(for_a), jnp.cumsum(for_b)
    before_a = cum_a - for_a - (cum_a - for_a)[first]
    before_b = cum_b - for_b - (cum_b - for_b)[first]
    mine = jnp.where(team_a, before_a, before_b)
    theirs = jnp.where(team_a, before_b, before_a)
    return mine, theirs, mine - theirs
