"""SPADL: the vocabulary of soccer actions (Decroos et al., KDD 2019), and kloppy events converted to it.

SPADL describes a match as a table of on-the-ball actions: who (team, player), when (period, seconds into the
period), where (start and end on a 105 x 68 m pitch, the home team attacking left to right all game) and what
(type, result, bodypart, as ids into the tuples below, in socceraction 1.5.3's order).

`actions_from_kloppy` reads kloppy's generic event model (kloppy parses the providers' files) and follows the
rules of socceraction's kloppy converter (socceraction 1.5.3, run with kloppy 3.15); it is gradfit's own code,
checked against that converter's output on three StatsBomb open-data matches (tests/vaep/test_spadl.py).
The walk over kloppy's event objects is in `_spadl_kloppy`; everything after it is vectorised here.

Differences from socceraction
-----------------------------
1. Direction of play. socceraction's kloppy converter asks kloppy for the HOME_AWAY orientation, in which the
   teams switch ends at half-time: in periods 2 and 4 its home team attacks right to left. SPADL (and
   socceraction's own StatsBomb, Wyscout and Opta converters, and VAEP's `play_left_to_right`, which only
   mirrors the away team) has the home team attack left to right in every period, so here kloppy is asked for
   STATIC_HOME_AWAY. In periods 2 and 4 every x is 105 - x and every y is 68 - y of socceraction's kloppy
   output. A clearance ends where the next action starts, so a clearance that ends a first half now ends at
   the second half's kick-off spot as seen with the home team attacking left to right. On the three StatsBomb
   test matches: all 3,328 second-half actions (of 6,894) are mirrored, and 1 first-half clearance (game
   15946) ends 1.3 m away from socceraction's end.
2. Coordinates are clipped to the pitch, as socceraction's own converters do and its SPADL schema requires
   (0 <= x <= 105, 0 <= y <= 68); its kloppy converter does not clip. No coordinate of the three StatsBomb
   matches lies outside, so this changes nothing there.
3. kloppy 3.19 (gradfit's) instead of 3.15 (what socceraction 1.5.3 supports). On the three matches kloppy 3.19
   reads 15 loose-ball recoveries as loose-ball duels (non-actions either way), gives ball-out events other
   synthetic ids (non-actions) and adds under-pressure/counter-attack qualifiers (not used by SPADL): no
   action changes.
4. Dribbles inserted between actions have no original event id: None here, NaN in socceraction.

Kept from socceraction on purpose (they look odd, but they are what SPADL data and VAEP models are made of):
- A dribble is inserted only if the next action is neither a shot nor a header (the rule is meant to skip
  only headed shots, but socceraction's shared `_add_dribbles` excludes both, in every converter).
- kloppy has no outcome for keeper actions, so every keeper save is a success.
- An own goal is a `bad_touch` with result `owngoal`, as in socceraction's StatsBomb and Opta converters.
- Wyscout v2: kloppy marks both players of a ground duel (attacking and defending) as a ground duel, so both
  become tackles (won: success, lost: fail); the generic model cannot tell the attacker from the defender.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gradfit.errors import DataError

FIELD_LENGTH = 105.0  # metres
FIELD_WIDTH = 68.0

ACTION_TYPES = (
    "pass",
    "cross",
    "throw_in",
    "freekick_crossed",
    "freekick_short",
    "corner_crossed",
    "corner_short",
    "take_on",
    "foul",
    "tackle",
    "interception",
    "shot",
    "shot_penalty",
    "shot_freekick",
    "keeper_save",
    "keeper_claim",
    "keeper_punch",
    "keeper_pick_up",
    "clearance",
    "bad_touch",
    "non_action",
    "dribble",
    "goalkick",
)
RESULTS = ("fail", "success", "offside", "owngoal", "yellow_card", "red_card")
BODYPARTS = ("foot", "head", "other", "head/other", "foot_left", "foot_right")

# socceraction's column order; the *_name columns follow.
SPADL_COLUMNS = (
    "game_id",
    "original_event_id",
    "period_id",
    "time_seconds",
    "team_id",
    "player_id",
    "start_x",
    "start_y",
    "end_x",
    "end_y",
    "type_id",
    "result_id",
    "bodypart_id",
    "action_id",
)
NAME_COLUMNS = ("type_name", "result_name", "bodypart_name")

# A dribble (carry) is inserted where the ball moved between two actions of one team: at least 3 m, at most
# 60 m, within 10 s (socceraction's values).
MIN_DRIBBLE_LENGTH = 3.0
MAX_DRIBBLE_LENGTH = 60.0
MAX_DRIBBLE_DURATION = 10.0

_TYPE = {name: i for i, name in enumerate(ACTION_TYPES)}
_OBJECT_COLUMNS = ("original_event_id", "team_id", "player_id")

Columns = dict[str, np.ndarray]


def actions_from_kloppy(dataset, game_id) -> pd.DataFrame:
    """SPADL actions of one match from a kloppy EventDataset (StatsBomb or Wyscout v2 as kloppy reads them).

    Returns socceraction's SPADL columns and dtypes (`SPADL_COLUMNS`) plus `type_name`, `result_name` and
    `bodypart_name`; rows ordered by period and time, `action_id` 0, 1, ... in that order.
    """
    from gradfit.vaep import _spadl_kloppy  # kloppy is imported only by those who convert

    events = _spadl_kloppy.to_spadl_pitch(dataset, game_id)
    columns = _actions(_spadl_kloppy.event_rows(events), game_id)
    columns = _fix_clearance_ends(columns)
    columns = _insert_dribbles(columns)
    return _frame(columns, game_id)


def _actions(rows: dict[str, list], game_id) -> Columns:
    """The walk's rows as arrays: sorted by period and time (stably), non-actions dropped, coordinates clipped."""
    type_id = _codes(rows["type_name"], ACTION_TYPES)
    period = np.asarray(rows["period_id"], dtype=np.int64)
    time = np.asarray(rows["time_seconds"], dtype=np.float64)
    order = np.lexsort((time, period))  # stable: kloppy's order breaks ties, as socceraction's mergesort does
    order = order[type_id[order] != _TYPE["non_action"]]
    columns = {
        "original_event_id": _objects(rows["original_event_id"])[order],
        "period_id": period[order],
        "time_seconds": time[order],
        "team_id": _objects(rows["team_id"])[order],
        "player_id": _objects(rows["player_id"])[order],
        "type_id": type_id[order],
        "result_id": _codes(rows["result_name"], RESULTS)[order],
        "bodypart_id": _codes(rows["bodypart_name"], BODYPARTS)[order],
    }
    for name, limit in (
        ("start_x", FIELD_LENGTH),
        ("start_y", FIELD_WIDTH),
        ("end_x", FIELD_LENGTH),
        ("end_y", FIELD_WIDTH),
    ):
        columns[name] = np.clip(np.asarray(rows[name], dtype=np.float64)[order], 0.0, limit)
    _check_complete(columns, game_id)
    return columns


def _codes(names: list[str], vocabulary: tuple[str, ...]) -> np.ndarray:
    codes = pd.Categorical(names, categories=vocabulary).codes.astype(np.int64)
    if (codes < 0).any():  # a bug in _spadl_kloppy, not bad input
        raise AssertionError(f"name outside the SPADL vocabulary: {names[int(np.argmax(codes < 0))]}")
    return codes


def _objects(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _check_complete(columns: Columns, game_id) -> None:
    """Every action needs a team and a start; an event without them is bad input, named by its id."""
    missing_team = pd.isna(columns["team_id"])
    missing_place = np.isnan(columns["start_x"]) | np.isnan(columns["start_y"])
    for bad, what in ((missing_team, "no team"), (missing_place, "no coordinates")):
        if bad.any():
            i = int(np.argmax(bad))
            kind = ACTION_TYPES[columns["type_id"][i]]
            raise DataError(f"game {game_id}: event {columns['original_event_id'][i]} ({kind}) has {what}")


def _fix_clearance_ends(columns: Columns) -> Columns:
    """A clearance ends where the next action starts (providers rarely record where a clearance lands).

    The last action's 'next' is itself, as in socceraction.
    """
    clearance = columns["type_id"] == _TYPE["clearance"]
    for axis in ("x", "y"):
        start = columns[f"start_{axis}"]
        next_start = np.concatenate([start[1:], start[-1:]])
        columns[f"end_{axis}"] = np.where(clearance, next_start, columns[f"end_{axis}"])
    return columns


def _dribble_after(columns: Columns) -> np.ndarray:
    """Rows after which a dribble is inserted: the same team kept the ball, and it moved 3 to 60 m within 10 s."""
    after = np.zeros(len(columns["type_id"]), dtype=bool)
    if after.size < 2:
        return after
    team, type_id = columns["team_id"], columns["type_id"]
    same_team = team[:-1] == team[1:]
    next_not_foul = type_id[1:] != _TYPE["foul"]  # a foul by the team on the ball ends the move
    # socceraction's rule: the next action is neither a shot nor a header (see the module docstring)
    next_not_shot_or_header = (type_id[1:] != _TYPE["shot"]) & (columns["bodypart_id"][1:] != BODYPARTS.index("head"))
    dx = columns["end_x"][:-1] - columns["start_x"][1:]
    dy = columns["end_y"][:-1] - columns["start_y"][1:]
    distance2 = dx**2 + dy**2
    moved = (distance2 >= MIN_DRIBBLE_LENGTH**2) & (distance2 <= MAX_DRIBBLE_LENGTH**2)
    quick = (columns["time_seconds"][1:] - columns["time_seconds"][:-1]) < MAX_DRIBBLE_DURATION
    same_period = columns["period_id"][:-1] == columns["period_id"][1:]
    after[:-1] = same_team & next_not_foul & next_not_shot_or_header & moved & quick & same_period
    return after


def _insert_dribbles(columns: Columns) -> Columns:
    """Insert a dribble from each flagged action's end to the next action's start, between the two."""
    after = _dribble_after(columns)
    prev = np.flatnonzero(after)
    nxt = prev + 1
    inserted_before = np.cumsum(after) - after  # dribbles placed before each original row
    keep_at = np.arange(after.size) + inserted_before
    dribble_at = prev + inserted_before[prev] + 1
    dribbles = {
        "original_event_id": np.full(prev.size, None, dtype=object),
        "period_id": columns["period_id"][nxt],
        "time_seconds": (columns["time_seconds"][prev] + columns["time_seconds"][nxt]) / 2,
        "team_id": columns["team_id"][nxt],
        "player_id": columns["player_id"][nxt],  # the receiver carries the ball
        "start_x": columns["end_x"][prev],
        "start_y": columns["end_y"][prev],
        "end_x": columns["start_x"][nxt],
        "end_y": columns["start_y"][nxt],
        "type_id": np.full(prev.size, _TYPE["dribble"], dtype=np.int64),
        "result_id": np.full(prev.size, RESULTS.index("success"), dtype=np.int64),
        "bodypart_id": np.full(prev.size, BODYPARTS.index("foot"), dtype=np.int64),
    }
    out = {}
    for name, values in columns.items():
        merged = np.empty(after.size + prev.size, dtype=values.dtype)
        merged[keep_at] = values
        merged[dribble_at] = dribbles[name]
        out[name] = merged
    return out


def _frame(columns: Columns, game_id) -> pd.DataFrame:
    """socceraction's columns and dtypes (ids as Python objects, numbers as int64/float64) plus the names."""
    n = len(columns["type_id"])
    game_dtype = np.int64 if isinstance(game_id, int | np.integer) else object
    data = {"game_id": np.full(n, game_id, dtype=game_dtype)}
    data.update({name: columns[name] for name in SPADL_COLUMNS[1:-1]})
    data["action_id"] = np.arange(n, dtype=np.int64)
    data["type_name"] = np.asarray(ACTION_TYPES, dtype=object)[columns["type_id"]]
    data["result_name"] = np.asarray(RESULTS, dtype=object)[columns["result_id"]]
    data["bodypart_name"] = np.asarray(BODYPARTS, dtype=object)[columns["bodypart_id"]]
    frame = pd.DataFrame(data)
    # pandas >= 3 would infer its string dtype; socceraction's ids and names are object columns
    text = [c for c in (*_OBJECT_COLUMNS, *NAME_COLUMNS) if frame[c].dtype != object]
    if game_dtype is object:
        text.append("game_id")
    return frame.astype(dict.fromkeys(text, object)) if text else frame
