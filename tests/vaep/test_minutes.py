"""Minutes played (gradfit.vaep.minutes) against truths that do not go through kloppy.

Truths:

* 3788741 (Italy-Turkey, Euro 2020): the StatsBomb v4 lineups file gives, per player, `positions` with
  `from` / `to` clocks, periods and start/end reasons, computed by the provider apart from the event stream.
* 15946 and 15986 (La Liga): their lineups files are older and have no `positions`, so the truth is built
  from the raw event JSON without kloppy: the Starting XI events, Substitution events and cards, timed by the
  events' `minute` / `second` clock fields (kloppy uses the `timestamp` field instead).

Comparing like with like: StatsBomb's `MM:SS` clocks (lineups `from` / `to`, events `minute` / `second`) are
cumulative match clocks that restart at 45:00, 90:00 and 105:00 at the start of periods 2, 3 and 4, whatever
the added time of the period before; added time shows up as clocks past 45:00 within period 1 (e.g. 45:55 at
the end of 3788741's first half). So a clock c in period p is c - restart[p] into that period, and its real
time since kick-off (what `minutes_played` returns) is the real lengths of the earlier periods plus that. The
real period lengths come from the raw Half End events' `timestamp` (exact to the millisecond). `to: null`
means the final whistle: the sum of the real lengths.

Tolerance: the `MM:SS` clocks are the exact times truncated to whole seconds, so every truth clock is 0 to 1 s
early; the entry, the exit and their difference each agree within 1 s (1/60 minute).
"""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from gradfit.errors import GradfitError

pytest.importorskip("kloppy")

from kloppy import statsbomb, wyscout  # noqa: E402
from kloppy.domain import (  # noqa: E402
    CardEvent,
    CardQualifier,
    CardType,
    DatasetFlag,
    EventDataset,
    FoulCommittedEvent,
    Ground,
    Metadata,
    Orientation,
    Period,
    Player,
    Provider,
    SubstitutionEvent,
    Team,
)
from kloppy.domain.services.event_factory import create_event  # noqa: E402

from gradfit.vaep.minutes import COLUMNS, minutes_played  # noqa: E402

DATA = Path(__file__).parent / "data"
SB_MATCHES = ("15946", "15986", "3788741")
WYSCOUT_MATCH = "2499773"
RESTART = {1: 0, 2: 45 * 60, 3: 90 * 60, 4: 105 * 60}  # StatsBomb's clock at the start of each period
TOL = 1.0 / 60.0  # one second, in minutes (see the module docstring)
EPS = 1e-9


def _json(path: Path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def _sb_paths(match_id: str) -> tuple[Path, Path]:
    return DATA / "statsbomb" / "events" / f"{match_id}.json.gz", DATA / "statsbomb" / "lineups" / f"{match_id}.json.gz"


def _seconds(ts: str) -> float:
    h, m, s = ts.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def _clock(mmss: str) -> int:
    m, s = mmss.split(":")
    return int(m) * 60 + int(s)


class _RealClock:
    """Real seconds since kick-off from StatsBomb's cumulative MM:SS clock, period lengths from Half End."""

    def __init__(self, raw_events):
        self.length = {}
        for e in raw_events:
            if e["type"]["name"] == "Half End" and e["period"] in RESTART:
                self.length[e["period"]] = max(self.length.get(e["period"], 0.0), _seconds(e["timestamp"]))
        self.offset, elapsed = {}, 0.0
        for p in sorted(self.length):
            self.offset[p], elapsed = elapsed, elapsed + self.length[p]
        self.end = elapsed

    def real(self, clock_s: int, period: int) -> float:
        return self.offset[period] + clock_s - RESTART[period]


def _truth_from_positions(raw_lineups, clock: _RealClock) -> pd.DataFrame:
    """Per player with positions: the first `from` and the last `to` (the segments are contiguous)."""
    reasons = {"Final Whistle": "full match", "Red Card": "red card", "Second Yellow": "second yellow"}
    rows = []
    for team in raw_lineups:
        for p in team["lineup"]:
            pos = p.get("positions") or []
            if not pos:
                continue
            first, last = pos[0], pos[-1]
            t_in = clock.real(_clock(first["from"]), first["from_period"])
            t_out = clock.end if last["to"] is None else clock.real(_clock(last["to"]), last["to_period"])
            end = last["end_reason"]
            rows.append(
                {
                    "team_id": str(team["team_id"]),
                    "player_id": str(p["player_id"]),
                    "starter": first["start_reason"] == "Starting XI",
                    "minute_in": t_in / 60,
                    "minute_out": t_out / 60,
                    "reason_out": "substituted" if end.startswith("Substitution - Off") else reasons.get(end, end),
                }
            )
    return pd.DataFrame(rows)


def _truth_from_raw_events(raw_events, clock: _RealClock) -> pd.DataFrame:
    """Starting XI, substitutions and sendings-off straight from the event JSON, timed by minute/second."""
    stints = {}  # (team, player) -> [starter, in, out, reason]
    for e in raw_events:
        team = str(e["team"]["id"])
        if e["type"]["name"] == "Starting XI":
            for p in e["tactics"]["lineup"]:
                stints[(team, str(p["player"]["id"]))] = [True, 0.0, None, "full match"]
        if e["period"] not in RESTART:
            continue
        t = clock.real(e["minute"] * 60 + e["second"], e["period"])
        if e["type"]["name"] == "Substitution":
            stints[(team, str(e["player"]["id"]))][2:] = [t, "substituted"]
            stints[(team, str(e["substitution"]["replacement"]["id"]))] = [False, t, None, "full match"]
        card = (e.get("foul_committed") or e.get("bad_behaviour") or {}).get("card", {}).get("name")
        if card in ("Red Card", "Second Yellow"):
            stint = stints[(team, str(e["player"]["id"]))]
            if stint[2] is None:
                stint[2:] = [t, "red card" if card == "Red Card" else "second yellow"]
    return pd.DataFrame(
        [
            {
                "team_id": team,
                "player_id": player,
                "starter": starter,
                "minute_in": t_in / 60,
                "minute_out": (clock.end if t_out is None else t_out) / 60,
                "reason_out": reason,
            }
            for (team, player), (starter, t_in, t_out, reason) in stints.items()
        ]
    )


@pytest.fixture(scope="module")
def statsbomb_matches():
    """match id -> (our table, raw events, raw lineups)."""
    out = {}
    for mid in SB_MATCHES:
        events_path, lineups_path = _sb_paths(mid)
        ds = statsbomb.load(event_data=str(events_path), lineup_data=str(lineups_path))
        out[mid] = (minutes_played(ds, mid), _json(events_path), _json(lineups_path))
    return out


@pytest.mark.parametrize("match_id", SB_MATCHES)
def test_statsbomb_agrees_with_provider(statsbomb_matches, match_id):
    table, raw_events, raw_lineups = statsbomb_matches[match_id]
    assert list(table.columns) == COLUMNS
    assert (table["game_id"] == match_id).all()
    clock = _RealClock(raw_events)
    has_positions = any(p.get("positions") for t in raw_lineups for p in t["lineup"])
    assert has_positions == (match_id == "3788741")  # only the Euro 2020 lineups are v4 with positions
    truth = (_truth_from_positions if has_positions else _truth_from_raw_events)(
        raw_lineups if has_positions else raw_events, clock
    )

    merged = table.merge(truth, on=["team_id", "player_id"], how="outer", suffixes=("", "_truth"), indicator=True)
    assert (merged["_merge"] == "both").all(), merged.loc[merged["_merge"] != "both", ["team_id", "player_id"]]
    assert (merged["starter"] == merged["starter_truth"]).all()
    assert (merged["reason_out"] == merged["reason_out_truth"]).all()
    played_truth = merged["minute_out_truth"] - merged["minute_in_truth"]
    for ours, theirs in (
        (merged["minute_in"], merged["minute_in_truth"]),
        (merged["minute_out"], merged["minute_out_truth"]),
        (merged["minutes_played"], played_truth),
    ):
        assert (ours - theirs).abs().max() <= TOL + EPS
    # the truncated clocks are never late: ours is the exact time, at or after the truth's
    assert (merged["minute_in"] - merged["minute_in_truth"]).min() >= -EPS


# Facts about the three matches, read off the raw JSON (and asserted against it below).
EXPECTED = {
    # match: (real period lengths in seconds, {player sent off: reason}, substitutions per team)
    "15946": ((2705.267, 2852.053), {}, {"217": 3, "206": 3}),
    "15986": ((2881.108, 2888.184), {"6826": "red card"}, {"217": 3, "211": 3}),
    "3788741": ((2755.111, 2883.327), {}, {"914": 5, "909": 4}),
}


@pytest.mark.parametrize("match_id", SB_MATCHES)
def test_statsbomb_team_totals(statsbomb_matches, match_id):
    table, raw_events, _ = statsbomb_matches[match_id]
    lengths, sent_off, n_subs = EXPECTED[match_id]
    clock = _RealClock(raw_events)
    assert tuple(clock.length[p] for p in sorted(clock.length)) == pytest.approx(lengths, abs=1e-9)
    match_len = sum(lengths) / 60
    assert table["minute_out"].max() == pytest.approx(match_len, abs=1e-9)
    assert table["minutes_played"].ge(0).all() and table["minutes_played"].le(match_len + EPS).all()

    off = table[table["reason_out"].isin(["red card", "second yellow"])]
    assert dict(zip(off["player_id"], off["reason_out"], strict=True)) == sent_off
    raw_reds = {
        str(e["player"]["id"])
        for e in raw_events
        if (e.get("foul_committed") or e.get("bad_behaviour") or {}).get("card", {}).get("name")
        in ("Red Card", "Second Yellow")
    }
    assert raw_reds == set(sent_off)

    for team_id, rows in table.groupby("team_id"):
        assert rows["starter"].sum() == 11
        assert (~rows["starter"]).sum() == n_subs[team_id] == (rows["reason_out"] == "substituted").sum()
        assert (rows.loc[rows["starter"], "minute_in"] == 0).all()
        lost = (match_len - rows.loc[rows["reason_out"].isin(["red card", "second yellow"]), "minute_out"]).sum()
        assert rows["minutes_played"].sum() == pytest.approx(11 * match_len - lost, abs=1e-6)
    if match_id == "15986":  # Lenglet (Barcelona) sent off at 32:36.585 of the first half
        lenglet = table.set_index("player_id").loc["6826"]
        assert lenglet["minute_out"] == pytest.approx((32 * 60 + 36.585) / 60, abs=1e-9)
        barca = table.loc[table["team_id"] == "217", "minutes_played"].sum()
        assert barca == pytest.approx(10 * match_len + lenglet["minute_out"], abs=1e-6)


@pytest.fixture(scope="module")
def wyscout_match():
    path = DATA / "wyscout" / f"{WYSCOUT_MATCH}.json.gz"
    ds = wyscout.load(event_data=str(path), data_version="V2")
    return minutes_played(ds, WYSCOUT_MATCH), _json(path)


def test_wyscout_inferred_lineups_are_plausible(wyscout_match):
    table, raw = wyscout_match
    events = raw["events"]
    # kloppy's Wyscout v2 periods: each ends at its last event (there are no Half End events in v2)
    first_half = max(e["eventSec"] for e in events if e["matchPeriod"] == "1H")
    match_len = (first_half + max(e["eventSec"] for e in events if e["matchPeriod"] == "2H")) / 60
    assert table["minute_out"].max() == pytest.approx(match_len, abs=1e-9)
    assert not any(t["id"] in (1701, 1703) for e in events for t in e["tags"])  # no red, no second yellow

    def when(e):  # minutes since kick-off of a raw event
        return (e["eventSec"] + (first_half if e["matchPeriod"] == "2H" else 0.0)) / 60

    first, last = {}, {}
    for e in events:
        key = str(e["playerId"])
        first.setdefault(key, when(e))
        last[key] = when(e)

    assert set(table["team_id"]) == set(raw["teams"])
    for team_id, rows in table.groupby("team_id"):
        starters, subs = rows[rows["starter"]], rows[~rows["starter"]]
        assert len(starters) == 11 and (starters["minute_in"] == 0).all()
        assert len(subs) == 3  # Premier League 2017/18: three substitutions
        assert (subs["minute_in"] > 0).all()
        assert (rows["minutes_played"] > 0).all() and (rows["minutes_played"] <= match_len + EPS).all()
        assert rows["minutes_played"].sum() == pytest.approx(11 * match_len, abs=1e-6)
        # a substitute enters before his first event; whoever he replaced left after his own last event
        assert all(first[p] >= m for p, m in zip(subs["player_id"], subs["minute_in"], strict=True))
        gone = rows[rows["reason_out"] == "substituted"]
        assert len(gone) == 3
        assert all(last[p] <= m for p, m in zip(gone["player_id"], gone["minute_out"], strict=True))
        # every player with an event is in the table
        acted = {str(e["playerId"]) for e in events if str(e["teamId"]) == team_id and e["playerId"] != 0}
        assert set(rows["player_id"]) == acted


# --- hand-built datasets: extra time, a shoot-out, cards carried only as a qualifier ---------------------


def _team(team_id: str, ground: Ground, starters: int = 11, squad: int = 14) -> Team:
    team = Team(team_id=team_id, name=team_id, ground=ground)
    team.players = [
        Player(player_id=f"{team_id}{i}", team=team, jersey_no=i, name=f"{team_id} {i}", starting=i <= starters)
        for i in range(1, squad + 1)
    ]
    return team


def _dataset(bounds, events_spec, starters: int = 11) -> EventDataset:
    """bounds: (start, end) seconds per period 1..n; events_spec: (class, period, seconds, player, extra kwargs)."""
    home, away = _team("H", Ground.HOME, starters), _team("A", Ground.AWAY, starters)
    periods = [
        Period(id=i, start_timestamp=timedelta(seconds=s), end_timestamp=None if e is None else timedelta(seconds=e))
        for i, (s, e) in enumerate(bounds, 1)
    ]
    players = {p.player_id: p for t in (home, away) for p in t.players}
    events = []
    for n, (cls, period, sec, pid, extra) in enumerate(events_spec):
        extra = dict(extra)
        if "replacement_player" in extra:
            extra["replacement_player"] = players[extra["replacement_player"]]
        events.append(
            create_event(
                cls,
                event_id=str(n),
                team=players[pid].team,
                player=players[pid],
                coordinates=None,
                ball_owning_team=None,
                ball_state=None,
                period=periods[period - 1],
                timestamp=timedelta(seconds=sec),
                raw_event={},
                result=None,
                qualifiers=extra.pop("qualifiers", None),
                **extra,
            )
        )
    metadata = Metadata(
        teams=[home, away],
        periods=periods,
        coordinate_system=None,
        pitch_dimensions=None,
        orientation=Orientation.NOT_SET,
        flags=DatasetFlag(0),
        provider=Provider.OTHER,
    )
    return EventDataset(records=events, metadata=metadata)


EXTRA_TIME = [(0, 2760), (2760, 5640), (5640, 6600), (6600, 7560), (7560, 8400)]  # 46, 48, 16, 16 min + shoot-out


def test_hand_built_extra_time_and_cards():
    ds = _dataset(
        EXTRA_TIME,
        [
            (SubstitutionEvent, 2, 0, "H1", {"replacement_player": "H12"}),  # at half-time
            (SubstitutionEvent, 3, 600, "H2", {"replacement_player": "H13"}),  # 10 min into extra time
            (SubstitutionEvent, 4, 300, "H13", {"replacement_player": "H14"}),  # a substitute substituted
            (CardEvent, 3, 120, "A2", {"card_type": CardType.SECOND_YELLOW}),
            (CardEvent, 1, 60, "A3", {"card_type": CardType.FIRST_YELLOW}),  # a yellow changes nothing
            # red card only as a qualifier on the foul (no CardEvent), and 1 min past the period's end: clamped
            (FoulCommittedEvent, 4, 1020, "A3", {"qualifiers": [CardQualifier(value=CardType.RED)]}),
            (CardEvent, 2, 100, "A12", {"card_type": CardType.RED}),  # on the bench: changes nothing
            (CardEvent, 5, 30, "A4", {"card_type": CardType.RED}),  # in the shoot-out: changes nothing
            (SubstitutionEvent, 5, 10, "A5", {"replacement_player": "A13"}),  # in the shoot-out: ignored
        ],
    )
    t = minutes_played(ds, "g").set_index("player_id")
    assert t["game_id"].eq("g").all()
    total = 46 + 48 + 16 + 16
    assert t.loc["H1", ["minute_out", "reason_out"]].tolist() == [46, "substituted"]
    assert t.loc["H12", ["minute_in", "minute_out", "starter"]].tolist() == [46, total, False]
    assert t.loc["H2", "minute_out"] == pytest.approx(94 + 10)
    assert t.loc["H13", ["minute_in", "minute_out", "reason_out"]].tolist() == [
        pytest.approx(104),
        pytest.approx(110 + 5),
        "substituted",
    ]
    assert t.loc["H14", ["minute_in", "minutes_played"]].tolist() == [pytest.approx(115), pytest.approx(total - 115)]
    assert t.loc["A2", ["minute_out", "reason_out"]].tolist() == [pytest.approx(96), "second yellow"]
    assert t.loc["A3", ["minute_out", "reason_out"]].tolist() == [pytest.approx(total), "red card"]
    assert t.loc["A4", "reason_out"] == "full match" and t.loc["A5", "reason_out"] == "full match"
    assert {"A12", "A13", "A14"} & set(t.index) == set()  # unused substitutes have no row
    assert len(t) == 11 + 3 + 11
    assert t.loc[t["team_id"] == "H", "minutes_played"].sum() == pytest.approx(11 * total)


def test_hand_built_inferred_lineup():
    """No starting XI and no substitutions (as kloppy's Wyscout v2): the lineup comes from the events."""
    foul = FoulCommittedEvent
    spec = [(foul, 1, 10 + i, f"H{i}", {}) for i in range(1, 12)]  # H1..H11 act first: the starters
    spec += [(foul, 1, 20 + i, f"A{i}", {}) for i in range(1, 12)]
    spec += [(foul, 2, 2400, f"H{i}", {}) for i in (3, 5, 6, 7, 8, 9, 10, 11)]  # still acting at 85 min
    spec += [
        (foul, 2, 600, "H1", {}),  # H1's last event: 55 min
        (foul, 2, 900, "H4", {}),  # H4's last event: 60 min
        (CardEvent, 2, 100, "H2", {"card_type": CardType.RED}),  # H2 sent off at 46.67 min
        (foul, 2, 1200, "H12", {}),  # H12's first event, 65 min: replaces the quietest, H1, at (55 + 65) / 2
        (foul, 2, 1700, "H13", {}),  # H13's first event, 73.33 min: replaces H4 at (60 + 73.33) / 2
    ]
    spec.sort(key=lambda r: (r[1], r[2]))
    t = minutes_played(_dataset([(0, 2700), (2700, 5400)], spec, 0), "g").set_index("player_id")
    assert t["starter"].sum() == 22 and len(t) == 24
    assert t.loc["H2", ["minute_out", "reason_out"]].tolist() == [pytest.approx(45 + 100 / 60), "red card"]
    assert t.loc["H1", ["minute_out", "reason_out"]].tolist() == [pytest.approx(60), "substituted"]
    assert t.loc["H12", ["starter", "minute_in"]].tolist() == [False, pytest.approx(60)]
    swap = (60 + 45 + 1700 / 60) / 2
    assert t.loc["H4", "minute_out"] == pytest.approx(swap) and t.loc["H13", "minute_in"] == pytest.approx(swap)
    assert (t.loc[[f"H{i}" for i in (3, 5, 6, 7, 8, 9, 10, 11)], "reason_out"] == "full match").all()


@pytest.mark.filterwarnings("ignore:Player H 1 is not on the pitch")  # kloppy's own check of the same problem
def test_hand_built_errors():
    with pytest.raises(GradfitError, match="period 2 has no start or end timestamp"):
        minutes_played(_dataset([(0, 2700), (2700, None)], []), "g")
    # substitutions for a team without a starting XI: we cannot tell who started
    no_xi = _dataset([(0, 2700), (2700, 5400)], [(SubstitutionEvent, 2, 60, "H1", {"replacement_player": "H12"})], 0)
    with pytest.raises(GradfitError, match="substitutions but no starting XI"):
        minutes_played(no_xi, "g")
    # no starting XI and no substitutions: inferred from events, which needs at least 11 players with events
    with pytest.raises(GradfitError, match="only 0 players with events"):
        minutes_played(_dataset([(0, 2700), (2700, 5400)], [], 0), "g")
