"""`gradfit vaep convert | train | rate`: raw event files -> SPADL tables -> a trained model -> player ratings."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from gradfit.cli.progress import say

vaep_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Value every on-the-ball action (VAEP): convert event data, train, rate players.",
)


@vaep_app.command()
def convert(
    folder: Path = typer.Argument(
        ..., help="Event files: StatsBomb open-data layout (events/, lineups/) or Wyscout v2."
    ),
    provider: str = typer.Option("statsbomb", help="statsbomb or wyscout."),
    out: Path = typer.Option(..., "--out", help="Folder for actions.parquet, players.parquet and games.csv."),
) -> None:
    """Parse every match with kloppy and write SPADL actions, minutes played and the games."""
    from gradfit.cli.progress import ProgressView
    from gradfit.cli.vaep_run import convert as run_convert

    with ProgressView(every=10) as view:

        def progress(done: int, total: int, game: str) -> None:
            view.update(done, f"converted {done}/{total} matches (last: {game})", force=done == total)

        written = run_convert(folder, provider, out, progress)
    for path in written:
        print(path)


def _flags(set_, epochs, batch_size, learning_rate, hidden, horizon, precision) -> list[str]:
    """Flags as --set overrides, after the user's own --set: flags > --set > config file > defaults."""
    out = list(set_ or [])
    for key, value in (
        ("training.epochs", epochs),
        ("training.batch_size", batch_size),
        ("training.learning_rate", learning_rate),
        ("labels.horizon", horizon),
        ("model.precision", precision),
    ):
        if value is not None:
            out.append(f"{key}={value}")
    if hidden is not None:
        out.append(f"model.hidden=[{hidden.strip('[]')}]")
    return out


@vaep_app.command()
def train(
    config: Path = typer.Argument(..., help="VAEP config (YAML): data, features, labels, model, training."),
    set_: list[str] = typer.Option(None, "--set", help="Override a config value, KEY=VALUE (repeatable)."),
    epochs: int = typer.Option(None, help="Maximum epochs (training.epochs)."),
    batch_size: int = typer.Option(None, "--batch-size", help="Actions per batch (training.batch_size)."),
    learning_rate: float = typer.Option(None, "--learning-rate", help="Adam's learning rate."),
    hidden: str = typer.Option(None, help="Hidden layer sizes, e.g. 256,128 (model.hidden)."),
    horizon: int = typer.Option(None, help="Goal within the next k actions (labels.horizon)."),
    precision: str = typer.Option(None, help="bf16 or float32 (model.precision)."),
    runs_dir: Path = typer.Option(None, "--runs-dir", help="Where run folders go (default: runs/ beside the config)."),
    name: str = typer.Option(None, "--name", help="Suffix of the run folder's name (the model version)."),
    json_: bool = typer.Option(False, "--json", help="Print results.json (with run_dir) instead of the table."),
) -> None:
    """Train the MLP (and the xgboost baseline) into a new versioned run folder; last line: the run folder."""
    from gradfit.cli.vaep_run import format_metrics, train_run

    overrides = _flags(set_, epochs, batch_size, learning_rate, hidden, horizon, precision)
    run, record = train_run(config, overrides, runs_dir, name, say)
    if json_:
        print(json.dumps({**record, "run_dir": str(run.path)}, indent=1, default=str))
    else:
        print(format_metrics(record), end="")
        print(run.path)


@vaep_app.command()
def rate(
    config: Path = typer.Argument(..., help="The VAEP config the model was trained with."),
    model: str = typer.Option("latest", help="Model version: latest, a run folder's name, or its path."),
    actions: Path = typer.Option(None, help="SPADL actions to rate (default: the config's data.actions)."),
    players: Path = typer.Option(None, help="Minutes played (default: the config's data.players)."),
    set_: list[str] = typer.Option(None, "--set", help="Override a config value, KEY=VALUE (repeatable)."),
    runs_dir: Path = typer.Option(None, "--runs-dir", help="Where the model's run folders are."),
    top: int = typer.Option(10, help="Print the top N players of the season (0: none)."),
) -> None:
    """Value every action with a trained model; write per-match and per-season player tables into its results/."""
    from gradfit.cli.vaep_run import rate_run

    run, written = rate_run(config, list(set_ or []), runs_dir, model, actions, players, say)
    if top > 0:
        import pandas as pd

        season = pd.read_csv(run.path / "results" / "player_season.csv")
        cols = [
            c
            for c in (
                "player_name",
                "player_id",
                "team_id",
                "games",
                "minutes_played",
                "vaep_value",
                "vaep_value_per90",
            )
            if c in season
        ]
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            print(season[cols].head(top).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for path in written:
        print(path)
