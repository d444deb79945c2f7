"""Raw event files in, SPADL tables out: actions, minutes played and games, for a whole folder of matches.

Layouts (what the providers publish):
- StatsBomb open data: <folder>/events/<match id>.json and <folder>/lineups/<match id>.json (.json.gz too).
- Wyscout v2 (one match per file, as kloppy reads it): <folder>/<match id>.json (.json.gz too).
Files are parsed with kloppy (a maintained parser); `gradfit.vaep.spadl` turns kloppy's events into SPADL
actions and `gradfit.vaep.minutes` reads the minutes played.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gradfit.errors import DataError

PROVIDERS = ("statsbomb", "wyscout")
_SUFFIXES = (".json", ".json.gz")


@dataclass(frozen=True)
class MatchFiles:
    game_id: str
    events: Path
    lineups: Path | None  # StatsBomb only


@dataclass(frozen=True)
class Converted:
    actions: pd.DataFrame  # SPADL, sorted by game, period, time; with home_team_id
    players: pd.DataFrame  # minutes played per player and game
    games: pd.DataFrame  # game_id, home_team_id, away_team_id, team names, periods' lengths


def _match_id(path: Path) -> str:
    name = path.name
    for suffix in _SUFFIXES[::-1]:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def discover(folder: Path, provider: str) -> list[MatchFiles]:
    """The matches in `folder`, in id order; a StatsBomb match without its lineups file is an error."""
    folder = Path(folder)
    if provider not in PROVIDERS:
        raise DataError(f"--provider {provider}: choose one of {', '.join(PROVIDERS)}")
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder of event files")
    if provider == "statsbomb":
        events_dir, lineups_dir = folder / "events", folder / "lineups"
        if not events_dir.is_dir():
            raise DataError(f"{folder}: no events/ folder; StatsBomb open data keeps events/ and lineups/ side by side")
        files = sorted(p for p in events_dir.iterdir() if p.name.endswith(_SUFFIXES))
        out = []
        for path in files:
            game = _match_id(path)
            lineup = next(
                (lineups_dir / f"{game}{s}" for s in _SUFFIXES if (lineups_dir / f"{game}{s}").exists()), None
            )
            if lineup is None:
                raise DataError(f"{path}: no lineups/{game}.json beside it; StatsBomb matches need their lineups")
            out.append(MatchFiles(game, path, lineup))
    else:
        out = [MatchFiles(_match_id(p), p, None) for p in sorted(folder.iterdir()) if p.name.endswith(_SUFFIXES)]
    if not out:
        raise DataError(f"{folder}: no {provider} event files (*.json) found")
    return sorted(out, key=lambda m: (len(m.game_id), m.game_id))


def load_dataset(match: MatchFiles, provider: str):
    """kloppy's EventDataset of one match; a file kloppy cannot read is a one-line error naming it."""
    from kloppy import statsbomb, wyscout

    try:
        if provider == "statsbomb":
            return statsbomb.load(event_data=str(match.events), lineup_data=str(match.lineups))
        return wyscout.load(event_data=str(match.events), data_version="V2")
    except Exception as exc:  # kloppy raises many types for malformed files
        raise DataError(
            f"{match.events}: not readable as {provider} events ({type(exc).__name__}: {exc})"[:300]
        ) from None


def convert_matches(
    matches: list[MatchFiles], provider: str, progress: Callable[[int, int, str], None] | None = None
) -> Converted:
    """SPADL actions, minutes and games of every match (one kloppy parse each)."""
    actions, players, games = [], [], []
    for i, match in enumerate(matches):
        frame, minutes, game = convert_dataset(load_dataset(match, provider), match.game_id)
        actions.append(frame)
        players.append(minutes)
        games.append(game)
        if progress is not None:
            progress(i + 1, len(matches), match.game_id)
    return Converted(pd.concat(actions, ignore_index=True), pd.concat(players, ignore_index=True), pd.DataFrame(games))


def convert_dataset(dataset, game_id: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """One match: its SPADL actions (with home_team_id), its minutes table and its games row."""
    from gradfit.vaep.minutes import minutes_played
    from gradfit.vaep.spadl import actions_from_kloppy

    home, away = dataset.metadata.teams[0], dataset.metadata.teams[1]
    frame = actions_from_kloppy(dataset, game_id)
    frame["game_id"] = str(game_id)
    frame["home_team_id"] = str(home.team_id)
    minutes = minutes_played(dataset, game_id)
    minutes["game_id"] = str(game_id)
    game = {
        "game_id": str(game_id),
        "home_team_id": str(home.team_id),
        "away_team_id": str(away.team_id),
        "home_team": home.name,
        "away_team": away.name,
        "date": str(getattr(dataset.metadata, "date", "") or ""),
        "actions": len(frame),
    }
    return frame, minutes, game
