"""Minutes played per player in one match, from a kloppy EventDataset, for per-90 VAEP ratings.

Rules:

* The clock is real playing time: each counted period lasts from kloppy's ``start_timestamp`` to its
  ``end_timestamp`` (``dataset.metadata.periods``), added time included, so a match is rarely 90 minutes.
  Periods 1-4 (halves and extra-time halves) count; period 5 (the penalty shoot-out) does not, and nothing
  that happens in it (substitution, card) changes the table. The half-time break is not counted.
* A time within a period is the event's ``timestamp`` (kloppy: elapsed since that period's start), clamped to
  the period's length. ``minute_in`` / ``minute_out`` are minutes of real playing time since kick-off: the
  real lengths of the earlier periods plus the time within the period. A player leaving at the end of a
  period and one entering at the start of the next meet at the same minute.
* Starters (kloppy ``player.starting``) enter at kick-off; a substitute enters at his ``SubstitutionEvent``
  (``replacement_player``).
* A player leaves at his substitution (``reason_out`` "substituted"), his sending-off ("red card" or
  "second yellow": a ``CardEvent`` with ``card_type`` RED / SECOND_YELLOW, or a ``CardQualifier`` with that
  value on any event, e.g. ``FoulCommittedEvent``; kloppy 3.19's StatsBomb and Wyscout v2 loaders emit both
  for one booking, so each player's earliest sending-off is used) or the end of the match ("full match").
  A card to a player who is not on the pitch (on the bench, already replaced) changes nothing.
* Only players who were on the pitch get a row; unused substitutes do not.
* A team without a starting XI and without substitution events (kloppy's Wyscout v2 loader has neither) is
  inferred from its events: the 11 players whose first event comes first start; every other player with an
  event is a substitute. Substitutes are taken in the order of their first event; each replaces the player on
  the pitch (not sent off) whose last event is earliest among those whose last event comes before the
  substitute's first, and the swap is put halfway between those two events (if no one on the pitch has gone
  quiet by then, the one with the earliest last event is replaced at the substitute's first event). These
  times are estimates, off by up to half the gap between the two events.

Anything else this cannot handle (no period timestamps, substitutions without a starting XI, too few players
to infer a starting XI) raises `GradfitError` with a one-line message.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
from kloppy.domain import CardEvent, CardQualifier, CardType, SubstitutionEvent

from gradfit.errors import GradfitError

COLUMNS = [
    "game_id",
    "team_id",
    "player_id",
    "player_name",
    "starter",
    "minute_in",
    "minute_out",
    "minutes_played",
    "reason_out",
]

_COUNTED_PERIODS = (1, 2, 3, 4)  # two halves and two halves of extra time; 5 is the shoot-out
_SENT_OFF = {CardType.RED: "red card", CardType.SECOND_YELLOW: "second yellow"}
_XI = 11


def minutes_played(dataset, game_id) -> pd.DataFrame:
    """One row per player who was on the pitch in `dataset` (a kloppy EventDataset); see the module docstring.

    Columns: game_id, team_id, player_id (kloppy's, str), player_name, starter (bool), minute_in, minute_out,
    minutes_played (float minutes of real playing time) and reason_out ("full match", "substituted",
    "red card", "second yellow").
    """
    offsets, lengths = _period_clock(dataset)
    match_end = sum(lengths.values())

    def at(event) -> float | None:
        """Seconds of playing time since kick-off, or None for events outside the counted periods."""
        period = getattr(event, "period", None)
        pid = getattr(period, "id", None)
        if pid not in offsets:
            return None
        ts = event.timestamp
        if not isinstance(ts, timedelta):
            raise GradfitError(f"game {game_id}: event {event.event_id} has no period-relative timestamp")
        return offsets[pid] + min(max(ts.total_seconds(), 0.0), lengths[pid])

    # One pass over the events: substitutions, sendings-off (earliest per player) and, for teams whose
    # lineup must be inferred, each player's first and last event.
    teams = list(dataset.metadata.teams)
    to_infer = {t.team_id for t in teams if not any(p.starting for p in t.players)}
    subs: list[tuple[float, int, object, object]] = []  # (time, order, player off, player on)
    sent_off: dict[tuple[str, str], tuple[float, int, str]] = {}  # (team, player) -> (time, order, reason)
    seen: dict[tuple[str, str], list] = {}  # (team, player) -> [first, last, player]
    for order, event in enumerate(dataset.events):
        t = at(event)
        if t is None:
            continue
        if isinstance(event, SubstitutionEvent):
            if event.player is not None or event.replacement_player is not None:
                subs.append((t, order, event.player, event.replacement_player))
            continue
        player = event.player
        if player is None:
            continue
        key = (player.team.team_id, player.player_id)
        card = event.card_type if isinstance(event, CardEvent) else event.get_qualifier_value(CardQualifier)
        if card in _SENT_OFF and (key not in sent_off or t < sent_off[key][0]):
            sent_off[key] = (t, order, _SENT_OFF[card])
        if key[0] in to_infer:
            if key in seen:
                rec = seen[key]
                rec[0], rec[1] = min(rec[0], t), max(rec[1], t)
            else:
                seen[key] = [t, t, player]

    sub_teams = {(off or on).team.team_id for _, _, off, on in subs}
    rows: list[dict] = []
    for team in teams:
        if team.team_id in to_infer:
            if team.team_id in sub_teams:
                raise GradfitError(
                    f"game {game_id}: team {team.team_id} has substitutions but no starting XI; cannot tell who started"
                )
            stints = _inferred_stints(team, seen, sent_off, game_id)
        else:
            stints = _stints(team, subs, sent_off)
        lineup_order = {p.player_id: i for i, p in enumerate(team.players)}
        stints.sort(key=lambda s: (not s[1], s[2], lineup_order.get(s[0].player_id, len(lineup_order))))
        for player, starter, t_in, t_out, reason in stints:
            t_out = match_end if t_out is None else t_out
            rows.append(
                {
                    "game_id": game_id,
                    "team_id": str(team.team_id),
                    "player_id": str(player.player_id),
                    "player_name": player.full_name,
                    "starter": starter,
                    "minute_in": t_in / 60.0,
                    "minute_out": t_out / 60.0,
                    "minutes_played": (t_out - t_in) / 60.0,
                    "reason_out": reason,
                }
            )
    out = pd.DataFrame(rows, columns=COLUMNS)
    return out.astype({"starter": bool, "minute_in": float, "minute_out": float, "minutes_played": float})


def _period_clock(dataset) -> tuple[dict[int, float], dict[int, float]]:
    """Per counted period: seconds of real playing time before it, and its real length."""
    periods = sorted(
        (p for p in getattr(dataset.metadata, "periods", None) or [] if p.id in _COUNTED_PERIODS),
        key=lambda p: p.id,
    )
    if not periods:
        raise GradfitError("the dataset has no periods 1-4 in metadata.periods; cannot measure match length")
    offsets: dict[int, float] = {}
    lengths: dict[int, float] = {}
    elapsed = 0.0
    for p in periods:
        if p.start_timestamp is None or p.end_timestamp is None:
            raise GradfitError(f"period {p.id} has no start or end timestamp; cannot measure its length")
        length = (p.end_timestamp - p.start_timestamp).total_seconds()
        if length <= 0:
            raise GradfitError(f"period {p.id} ends ({p.end_timestamp}) before it starts ({p.start_timestamp})")
        offsets[p.id], lengths[p.id] = elapsed, length
        elapsed += length
    return offsets, lengths


def _stints(team, subs, sent_off):
    """(player, starter, in, out or None, reason) from the starting XI, substitutions and sendings-off."""
    tid = team.team_id
    on: dict[str, list] = {p.player_id: [p, True, 0.0] for p in team.players if p.starting}
    done: list[tuple] = []
    played = set(on)
    changes = [(t, o, "sub", off, new) for t, o, off, new in subs if (off or new).team.team_id == tid]
    changes += [(t, o, reason, pid, None) for (team_id, pid), (t, o, reason) in sent_off.items() if team_id == tid]
    changes.sort(key=lambda c: (c[0], c[1]))
    for t, _, kind, who, new in changes:
        if kind == "sub":
            if who is not None and who.player_id in on:
                p, starter, t_in = on.pop(who.player_id)
                done.append((p, starter, t_in, t, "substituted"))
            if new is not None and new.player_id not in played:  # a re-entry or a duplicated substitution
                on[new.player_id] = [new, False, t]
                played.add(new.player_id)
        elif who in on:
            p, starter, t_in = on.pop(who)
            done.append((p, starter, t_in, t, kind))
    done += [(p, starter, t_in, None, "full match") for p, starter, t_in in on.values()]
    return done


def _inferred_stints(team, seen, sent_off, game_id):
    """Stints for a team without a starting XI or substitutions, inferred from its players' events."""
    tid = team.team_id
    players = sorted(
        ((first, last, p) for (team_id, _), (first, last, p) in seen.items() if team_id == tid),
        key=lambda r: (r[0], r[2].player_id),
    )
    if len(players) < _XI:
        raise GradfitError(
            f"game {game_id}: team {tid} has no starting XI and only {len(players)} players with events; "
            "cannot infer who started"
        )
    last_event = {p.player_id: last for _, last, p in players}
    on: dict[str, list] = {p.player_id: [p, True, 0.0] for _, _, p in players[:_XI]}
    done: list[tuple] = []
    # substitutes by first event, sendings-off by their time; at equal times the sending-off comes first
    changes = [(first, 1, "sub", p) for first, _, p in players[_XI:]]
    changes += [(t, 0, reason, pid) for (team_id, pid), (t, _, reason) in sent_off.items() if team_id == tid]
    changes.sort(key=lambda c: (c[0], c[1]))
    for t, _, kind, who in changes:
        if kind != "sub":
            if who in on:
                p, starter, t_in = on.pop(who)
                done.append((p, starter, t_in, t, kind))
            continue
        if on:
            quiet = [pid for pid in on if last_event[pid] < t]
            pid = min(quiet or on, key=lambda q: (last_event[q], q))
            swap = (last_event[pid] + t) / 2.0 if quiet else t
            p, starter, t_in = on.pop(pid)
            done.append((p, starter, t_in, swap, "substituted"))
        else:  # everyone was sent off before (cannot happen in a real match)
            swap = t
        on[who.player_id] = [who, False, swap]
    done += [(p, starter, t_in, None, "full match") for p, starter, t_in in on.values()]
    return done
