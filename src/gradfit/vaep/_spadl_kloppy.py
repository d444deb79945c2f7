"""The one walk over kloppy's event objects: each event becomes a row of SPADL columns (names, not ids yet).

kloppy (a maintained parser) has already read the provider's file into its generic event model; here each
event is mapped to a SPADL (type, result, bodypart) following the rules of socceraction's kloppy converter
(socceraction 1.5.3, `spadl/kloppy.py`). Everything after this walk is vectorised in `gradfit.vaep.spadl`.
"""

from __future__ import annotations

from collections.abc import Callable

from kloppy.domain import (
    BodyPart,
    CardType,
    CoordinateSystem,
    Dimension,
    DuelResult,
    DuelType,
    EventDataset,
    EventType,
    GoalkeeperActionType,
    InterceptionResult,
    MetricPitchDimensions,
    Orientation,
    Origin,
    PassResult,
    PassType,
    SetPieceType,
    ShotResult,
    TakeOnResult,
    VerticalOrientation,
)
from kloppy.exceptions import KloppyError

from gradfit.errors import DataError
from gradfit.vaep.spadl import FIELD_LENGTH, FIELD_WIDTH

# A row of the walk: what the event says, before sorting, filtering and dribble insertion.
COLUMNS = (
    "original_event_id",
    "period_id",
    "time_seconds",
    "team_id",
    "player_id",
    "start_x",
    "start_y",
    "end_x",
    "end_y",
    "type_name",
    "result_name",
    "bodypart_name",
)

Labels = tuple[str, str, str]  # (type, result, bodypart) names
_NON_ACTION: Labels = ("non_action", "success", "foot")
_LOFTED = frozenset({PassType.CHIPPED_PASS, PassType.CROSS, PassType.HIGH_PASS, PassType.LONG_BALL})


class _SpadlCoordinates(CoordinateSystem):
    """SPADL's pitch: 105 x 68 metres, origin at the bottom left, y pointing up."""

    def __init__(self, pitch_length: float | None, pitch_width: float | None) -> None:
        self._pitch_length = pitch_length
        self._pitch_width = pitch_width

    @property
    def provider(self) -> str:
        return "SPADL"

    @property
    def origin(self) -> Origin:
        return Origin.BOTTOM_LEFT

    @property
    def vertical_orientation(self) -> VerticalOrientation:
        return VerticalOrientation.BOTTOM_TO_TOP

    @property
    def pitch_dimensions(self) -> MetricPitchDimensions:
        # standardized=True: kloppy maps the provider's pitch onto the standard one zone by zone
        # (boxes onto boxes), as socceraction's kloppy converter asks for.
        return MetricPitchDimensions(
            x_dim=Dimension(0, FIELD_LENGTH),
            y_dim=Dimension(0, FIELD_WIDTH),
            pitch_length=self._pitch_length,
            pitch_width=self._pitch_width,
            standardized=True,
        )


def to_spadl_pitch(dataset: EventDataset, game_id: object) -> EventDataset:
    """The dataset on SPADL's pitch, with the home team attacking left to right in every period.

    STATIC_HOME_AWAY, not socceraction's HOME_AWAY (teams switch ends at half-time): SPADL, like
    socceraction's own StatsBomb/Wyscout/Opta converters, keeps the home team attacking left to right all
    game, and VAEP's play_left_to_right only mirrors the away team.
    """
    if not isinstance(dataset, EventDataset):
        raise DataError(f"game {game_id}: expected a kloppy EventDataset, got {type(dataset).__name__}")
    if len(dataset.metadata.teams) != 2:
        raise DataError(f"game {game_id}: kloppy metadata has {len(dataset.metadata.teams)} teams, expected 2")
    source = dataset.metadata.coordinate_system
    try:
        return dataset.transform(
            to_orientation=Orientation.STATIC_HOME_AWAY,
            to_coordinate_system=_SpadlCoordinates(source.pitch_length, source.pitch_width),
        )
    except KloppyError as exc:
        raise DataError(f"game {game_id}: kloppy cannot orient the events ({exc})") from None


def event_rows(dataset: EventDataset) -> dict[str, list]:
    """One entry per event in each of COLUMNS, in kloppy's order (non-actions included)."""
    rows: dict[str, list] = {name: [] for name in COLUMNS}
    for event in dataset.events:
        start = event.coordinates
        end = _end_coordinates(event) or start
        type_name, result_name, bodypart_name = _PARSERS.get(event.event_type, _non_action)(event)
        values = (
            event.event_id,
            event.period.id,
            event.timestamp.total_seconds(),
            event.team.team_id if event.team else None,
            event.player.player_id if event.player else None,
            start.x if start else None,
            start.y if start else None,
            end.x if end else None,
            end.y if end else None,
            type_name,
            result_name,
            bodypart_name,
        )
        for name, value in zip(COLUMNS, values, strict=True):
            rows[name].append(value)
    return rows


def _end_coordinates(event):
    # Each event class keeps its end point under its own name; events without one end where they start.
    for name in ("receiver_coordinates", "end_coordinates", "result_coordinates"):
        point = getattr(event, name, None)
        if point is not None:
            return point
    return None


def _qualifiers(event) -> set:
    # Bool qualifiers (under pressure, counter-attack) add True to the set; harmless for the lookups below.
    return {q.value for q in event.qualifiers or ()}


def _bodypart(qualifiers: set, default: str = "foot") -> str:
    # First match wins, in socceraction's order (a head-and-foot event is a header).
    for part, name in (
        (BodyPart.HEAD, "head"),
        (BodyPart.RIGHT_FOOT, "foot_right"),
        (BodyPart.LEFT_FOOT, "foot_left"),
        (BodyPart.CHEST, "other"),
        (BodyPart.OTHER, "other"),
        (BodyPart.HEAD_OTHER, "head/other"),
    ):
        if part in qualifiers:
            return name
    return default


def _non_action(event) -> Labels:
    return _NON_ACTION


def _pass(event) -> Labels:
    qualifiers = _qualifiers(event)
    bodypart = _bodypart(qualifiers)
    lofted = not _LOFTED.isdisjoint(qualifiers)
    if SetPieceType.FREE_KICK in qualifiers:
        kind = "freekick_crossed" if lofted else "freekick_short"
    elif SetPieceType.CORNER_KICK in qualifiers:
        kind = "corner_crossed" if lofted else "corner_short"
    elif SetPieceType.GOAL_KICK in qualifiers:
        kind = "goalkick"
    elif SetPieceType.THROW_IN in qualifiers:
        kind, bodypart = "throw_in", "other"
    elif PassType.CROSS in qualifiers:
        kind = "cross"
    else:
        kind = "pass"
    if BodyPart.KEEPER_ARM in qualifiers:
        bodypart = "other"
    if event.result in (PassResult.INCOMPLETE, PassResult.OUT):
        return kind, "fail", bodypart
    if event.result == PassResult.OFFSIDE:
        return kind, "offside", bodypart
    if event.result == PassResult.COMPLETE:
        return kind, "success", bodypart
    return _NON_ACTION  # no result: the pass was interrupted (e.g. by the half-time whistle)


def _shot(event) -> Labels:
    qualifiers = _qualifiers(event)
    bodypart = _bodypart(qualifiers)
    if event.result == ShotResult.OWN_GOAL:
        return "bad_touch", "owngoal", bodypart  # SPADL books an own goal on the player who touched it last
    if SetPieceType.FREE_KICK in qualifiers:
        kind = "shot_freekick"
    elif SetPieceType.PENALTY in qualifiers:
        kind = "shot_penalty"
    else:
        kind = "shot"
    return kind, "success" if event.result == ShotResult.GOAL else "fail", bodypart


def _take_on(event) -> Labels:
    return "take_on", "success" if event.result == TakeOnResult.COMPLETE else "fail", "foot"


def _carry(event) -> Labels:
    return "dribble", "success", "foot"


def _interception(event) -> Labels:
    failed = event.result in (InterceptionResult.LOST, InterceptionResult.OUT)
    return "interception", "fail" if failed else "success", _bodypart(_qualifiers(event))


def _foul(event) -> Labels:
    qualifiers = _qualifiers(event)
    if CardType.FIRST_YELLOW in qualifiers:
        return "foul", "yellow_card", "foot"
    if CardType.SECOND_YELLOW in qualifiers or CardType.RED in qualifiers:
        return "foul", "red_card", "foot"
    return "foul", "fail", "foot"


def _duel(event) -> Labels:
    # Only a ground duel for a ball someone controls is a tackle; aerial and loose-ball duels are not actions.
    qualifiers = _qualifiers(event)
    if DuelType.GROUND not in qualifiers or DuelType.LOOSE_BALL in qualifiers:
        return _NON_ACTION
    return "tackle", "fail" if event.result == DuelResult.LOST else "success", "foot"


def _clearance(event) -> Labels:
    return "clearance", "success", _bodypart(_qualifiers(event))


def _miscontrol(event) -> Labels:
    return "bad_touch", "fail", "foot"


# Later entries win when an event carries several keeper actions (socceraction checks them in this order).
_KEEPER_ACTIONS = (
    (GoalkeeperActionType.SAVE, "keeper_save"),
    (GoalkeeperActionType.CLAIM, "keeper_claim"),
    (GoalkeeperActionType.SMOTHER, "keeper_claim"),
    (GoalkeeperActionType.PUNCH, "keeper_punch"),
    (GoalkeeperActionType.PICK_UP, "keeper_pick_up"),
)


def _goalkeeper(event) -> Labels:
    qualifiers = _qualifiers(event)
    kind = "non_action"
    for action, name in _KEEPER_ACTIONS:
        if action in qualifiers:
            kind = name
    # kloppy has no outcome for keeper actions, so a save is always a success (as in socceraction).
    return kind, "success", _bodypart(qualifiers, default="other")


_PARSERS: dict[EventType, Callable[[object], Labels]] = {
    EventType.PASS: _pass,
    EventType.SHOT: _shot,
    EventType.TAKE_ON: _take_on,
    EventType.CARRY: _carry,
    EventType.FOUL_COMMITTED: _foul,
    EventType.DUEL: _duel,
    EventType.CLEARANCE: _clearance,
    EventType.MISCONTROL: _miscontrol,
    EventType.GOALKEEPER: _goalkeeper,
    EventType.INTERCEPTION: _interception,
}
