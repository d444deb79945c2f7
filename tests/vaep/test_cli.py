"""`gradfit vaep convert | train | rate`, `gradfit runs | show` and `gradfit sweep` on VAEP, end to end in-process.

The three shipped StatsBomb matches are converted once for the module; one tiny model (one hidden layer of 16,
2 epochs) is trained once and rated once, and the tests read what those commands wrote. Truths that do not go
through gradfit's VAEP code: the labels (a goal by the acting team, or an own goal by the other, within the next
10 actions of the game) computed here with a plain loop over the action names, the metrics recomputed from them
(Brier by definition, AUC by counting pairs), the file layout and precedence rules of the run folders, and counts
taken from the tables themselves.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytest.importorskip("kloppy")
pytest.importorskip("xgboost")

from gradfit.cli.main import main  # noqa: E402
from gradfit.vaep import pipeline  # noqa: E402
from gradfit.vaep.spadl import NAME_COLUMNS, SPADL_COLUMNS  # noqa: E402

HERE = Path(__file__).parent
STATSBOMB = HERE / "data" / "statsbomb"
EXAMPLE = HERE.parents[1] / "examples" / "vaep" / "vaep.yaml"
GAMES = {"15946", "15986", "3788741"}
MODEL = "vaep_statsbomb"  # the example config's name
SHOTS = ("shot", "shot_penalty", "shot_freekick")


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """main(argv) with its stdout and stderr (for module fixtures, where capsys is not available)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def write_config(folder: Path, name: str = "vaep.yaml", **changes) -> Path:
    """The example config with the data in `folder`/data, small trees, and `changes` ({section: {key: value}})."""
    config = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    config["data"]["actions"] = "data/actions.parquet"
    config["data"]["players"] = "data/players.parquet"
    config["training"].update(epochs=5, patience=4)  # patience 4: not the default 5
    config["baseline"].update(trees=5, max_depth=2, early_stopping=2)
    for section, values in changes.items():
        if isinstance(values, dict):
            config[section].update(values)
        else:
            config[section] = values
    path = folder / name
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def one_error_line(err: str, *fragments: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def labels_by_hand(actions: pd.DataFrame, horizon: int = 10) -> np.ndarray:
    """(n, 2) scores / concedes: a goal (successful shot) by the acting team or an own goal by the other team
    (concedes: the reverse) within this and the next horizon - 1 actions of the same game."""
    goal = (actions["type_name"].isin(SHOTS) & (actions["result_name"] == "success")).to_numpy()
    own = (actions["result_name"] == "owngoal").to_numpy()
    team = actions["team_id"].astype(str).to_numpy()
    game = actions["game_id"].astype(str).to_numpy()
    out = np.zeros((len(actions), 2), bool)
    for i in range(len(actions)):
        for j in range(i, min(i + horizon, len(actions))):
            if game[j] != game[i]:
                break
            same = team[j] == team[i]
            out[i, 0] |= (goal[j] and same) or (own[j] and not same)
            out[i, 1] |= (goal[j] and not same) or (own[j] and same)
    return out


def auc_by_pairs(y: np.ndarray, p: np.ndarray) -> float:
    """P(a positive's score > a negative's), ties counting one half."""
    pos, neg = p[y], p[~y]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


# ------------------------------------------------------------------------------------------------------
# Module fixtures: convert once, train once, rate once


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("vaep_cli")
    rc, out, err = run_cli(["vaep", "convert", STATSBOMB, "--out", folder / "data"])
    assert rc == 0, err
    assert out.split() == [str(folder / "data" / f) for f in ("actions.parquet", "players.parquet", "games.csv")]
    write_config(folder)
    return folder


@pytest.fixture(scope="module")
def actions(project) -> pd.DataFrame:
    return pd.read_parquet(project / "data" / "actions.parquet")


@pytest.fixture(scope="module")
def trained(project):
    """(runs dir, run folder, stdout, stderr) of one training run with flags and --set on top of the config."""
    runs = project / "runs_main"
    argv = ["vaep", "train", project / "vaep.yaml", "--runs-dir", runs, "--epochs", "2", "--hidden", "16"]
    argv += ["--batch-size", "256", "--name", "v1", "--set", "training.learning_rate=0.002"]
    argv += ["--set", "training.epochs=4"]  # a flag beats a --set of the same key
    rc, out, err = run_cli(argv)
    assert rc == 0, err
    run = Path(out.strip().splitlines()[-1])  # the last line: the run folder
    return runs, run, out, err


@pytest.fixture(scope="module")
def rated(project, trained):
    runs, run, _, _ = trained
    rc, out, err = run_cli(["vaep", "rate", project / "vaep.yaml", "--runs-dir", runs, "--model", "latest"])
    assert rc == 0, err
    return out, err


# ------------------------------------------------------------------------------------------------------
# convert


def test_convert_writes_spadl_actions_minutes_and_games(project, actions):
    from kloppy import statsbomb

    from gradfit.vaep.minutes import minutes_played

    assert list(actions.columns[: len(SPADL_COLUMNS)]) == list(SPADL_COLUMNS)
    assert set(NAME_COLUMNS) | {"home_team_id"} <= set(actions.columns)
    assert set(actions["game_id"].astype(str)) == GAMES
    games = pd.read_csv(project / "data" / "games.csv", dtype=str)
    assert set(games["game_id"]) == GAMES
    # each game's row count and home team agree with the actions table
    counts = actions.groupby(actions["game_id"].astype(str)).size()
    for _, g in games.iterrows():
        assert int(g["actions"]) == counts[g["game_id"]]
        home = actions.loc[actions["game_id"].astype(str) == g["game_id"], "home_team_id"].astype(str)
        assert set(home) == {g["home_team_id"]}
        teams = set(actions.loc[actions["game_id"].astype(str) == g["game_id"], "team_id"].astype(str))
        assert teams == {g["home_team_id"], g["away_team_id"]}
    # in SPADL order: games contiguous, then period, then time (what the model's features need)
    key = actions["game_id"].astype(str).map({g: i for i, g in enumerate(pd.unique(actions["game_id"]))})
    order = pd.DataFrame({"g": key, "p": actions["period_id"], "t": actions["time_seconds"]})
    assert order.equals(order.sort_values(["g", "p", "t"], kind="stable"))

    players = pd.read_parquet(project / "data" / "players.parquet")
    for game in sorted(GAMES):
        ds = statsbomb.load(
            event_data=str(STATSBOMB / "events" / f"{game}.json.gz"),
            lineup_data=str(STATSBOMB / "lineups" / f"{game}.json.gz"),
        )
        truth = minutes_played(ds, game).set_index(["team_id", "player_id"])["minutes_played"]
        ours = players[players["game_id"].astype(str) == game].set_index(["team_id", "player_id"])["minutes_played"]
        assert len(ours) == len(truth) >= 22
        pd.testing.assert_series_equal(ours.sort_index(), truth.sort_index(), check_exact=True)


# ------------------------------------------------------------------------------------------------------
# train


def test_train_writes_a_complete_run_folder(trained):
    runs, run, out, _ = trained
    assert run.parent.resolve() == (runs / MODEL).resolve()
    assert run.name.endswith("-v1") and run.name[:8].isdigit()
    for name in ("config.yaml", "history.csv", "log.txt", "best.npz", "metrics.txt", "results.json"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_001.npz", "epoch_002.npz"]
    assert (runs / MODEL / "latest").resolve() == run.resolve()

    history = pd.read_csv(run / "history.csv")
    assert history["epoch"].tolist() == [1, 2]
    results = json.loads((run / "results.json").read_text())
    assert results["workload"] == "vaep" and results["model"] == MODEL
    assert results["epochs_run"] == 2 and results["stopped"] == "max epochs"
    assert results["val_loss"] == pytest.approx(history["val_loss"].min(), rel=1e-12)
    assert results["best_epoch"] == int(history.loc[history["val_loss"].idxmin(), "epoch"])
    # the best model is the best epoch's checkpoint, byte for byte
    best = (run / "best.npz").read_bytes()
    assert best == (run / "checkpoints" / f"epoch_{results['best_epoch']:03d}.npz").read_bytes()
    model = pipeline.from_bytes(best)
    assert [layer["w"].shape[1] for layer in model.params["hidden"]] == [16]
    assert model.precision == "bf16" and model.previous_actions == 3

    log = (run / "log.txt").read_text()
    assert "started:" in log and "epoch   2" in log and f"finished: best epoch {results['best_epoch']}" in log
    assert (run / "metrics.txt").read_text() in out  # the table printed is the one saved
    assert out.strip().splitlines()[-1] == str(run)


def test_train_config_precedence(trained):
    """Flags > --set > config file > defaults, as saved in the run's config.yaml."""
    _, run, _, _ = trained
    saved = yaml.safe_load((run / "config.yaml").read_text())
    tr = saved["training"]
    assert tr["epochs"] == 2  # config 5, --set 4, --epochs 2
    assert tr["batch_size"] == 256  # config 512, --batch-size 256
    assert tr["learning_rate"] == 0.002  # config 0.001, --set 0.002
    assert tr["patience"] == 4  # config 4, default 5
    assert tr["keep_checkpoints"] == "all"  # not in the config: the default
    assert saved["model"] == {"hidden": [16], "precision": "bf16"}  # config [256, 128], --hidden 16
    assert saved["baseline"]["trees"] == 5 and saved["baseline"]["learning_rate"] == 0.3  # config; default
    assert Path(saved["data"]["actions"]).is_absolute() and Path(saved["data"]["actions"]).is_file()


def test_train_metrics_match_labels_and_predictions_computed_here(project, actions, trained, rated):
    """results.json's metrics, for the MLP against the rated probabilities of its best model, and the base rates
    for both models, against labels computed here."""
    _, run, _, _ = trained
    results = json.loads((run / "results.json").read_text())
    assert results["metrics_on"] == "validation"  # test_games 0
    split = results["games"]
    assert sorted(split["train"] + split["validation"]) == sorted(GAMES) and split["test"] == []
    assert len(split["validation"]) == 1
    val = actions["game_id"].astype(str).isin(split["validation"]).to_numpy()
    assert results["actions"] == {"train": int((~val).sum()), "validation": int(val.sum()), "test": 0}

    y = labels_by_hand(actions)[val]
    valued = pd.read_parquet(run / "results" / "actions_vaep.parquet")
    p = valued.loc[val, ["p_scores", "p_concedes"]].to_numpy(np.float64)
    assert set(results["metrics"]) == {"mlp", "xgboost"}
    for i, head in enumerate(("scores", "concedes")):
        assert y[:, i].sum() > 0  # both heads have positives in the validation game
        for name in ("mlp", "xgboost"):
            m = results["metrics"][name][head]
            assert 0 <= m["brier"] <= 1 and 0 <= m["auc"] <= 1 and m["log_loss"] > 0
            assert m["base_rate"] == pytest.approx(y[:, i].mean(), rel=1e-12)
        m = results["metrics"]["mlp"][head]
        assert m["brier"] == pytest.approx(np.mean((p[:, i] - y[:, i]) ** 2), rel=1e-5)
        assert m["auc"] == pytest.approx(auc_by_pairs(y[:, i], p[:, i]), abs=1e-9)
        assert m["mean_prediction"] == pytest.approx(p[:, i].mean(), rel=1e-5)
    # the scoring head ranks better than chance on the held-out game (it has a few dozen goals to learn from)
    assert results["metrics"]["mlp"]["scores"]["auc"] > 0.6


# ------------------------------------------------------------------------------------------------------
# rate


def test_rate_writes_ratings_into_the_run_folder(project, actions, trained, rated):
    _, run, _, _ = trained
    out, _ = rated
    folder = run / "results"
    names = ["actions_vaep.parquet", "player_match.csv", "player_match.parquet", "player_season.csv"]
    names += ["player_season.parquet", "ratings.json"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)
    for name in names:
        assert str(folder / name) in out.splitlines()

    valued = pd.read_parquet(folder / "actions_vaep.parquet")
    assert len(valued) == len(actions)
    assert valued[list(actions.columns)].equals(actions)  # the input rows, in order, with values added
    # VAEP = offensive + defensive; probabilities in (0, 1)
    assert np.allclose(valued["vaep_value"], valued["offensive_value"] + valued["defensive_value"], atol=1e-6)
    assert valued[["p_scores", "p_concedes"]].gt(0).all().all() and valued[["p_scores", "p_concedes"]].lt(1).all().all()

    season = pd.read_parquet(folder / "player_season.parquet")
    with_player = valued[valued["player_id"].notna()]
    assert season["vaep_value"].sum() == pytest.approx(
        with_player["vaep_value"].astype(float).sum(), rel=1e-6, abs=1e-6
    )
    assert season["actions"].sum() == len(with_player)
    players = pd.read_parquet(project / "data" / "players.parquet")
    # one row per player who played or acted (all who acted played here: see below)
    assert set(season["player_id"].astype(str)) == set(with_player["player_id"].astype(str)) | set(players["player_id"])

    # per-match minutes are the converted players table's, player by player
    match = pd.read_parquet(folder / "player_match.parquet")
    key = ["game_id", "team_id", "player_id"]
    joined = match.astype({k: str for k in key}).merge(players.astype({k: str for k in key}), on=key, how="outer",
                                                       suffixes=("", "_players"), indicator=True)  # fmt: skip
    assert (joined["_merge"] == "both").all()  # every player with minutes, and every rated player has minutes
    assert np.array_equal(joined["minutes_played"], joined["minutes_played_players"])
    assert np.allclose(match["vaep_value_per90"], match["vaep_value"] / match["minutes_played"] * 90, rtol=1e-12)
    # the CSV copies hold the same tables
    assert len(pd.read_csv(folder / "player_match.csv")) == len(match)
    assert pd.read_csv(folder / "player_season.csv")["vaep_value"].sum() == pytest.approx(season["vaep_value"].sum())

    manifest = json.loads((folder / "ratings.json").read_text())
    assert Path(manifest["model_run"]).resolve() == run.resolve()
    assert manifest["n_actions"] == len(actions) and manifest["n_games"] == 3 and manifest["n_players"] == len(season)
    assert sorted(manifest["files"]) == sorted(n for n in names if n != "ratings.json")


def test_rate_selects_a_model_by_run_folder_name_training_name_or_path(project, trained, rated):
    runs, run, _, _ = trained
    before = pd.read_parquet(run / "results" / "actions_vaep.parquet")
    name = run.name.split("-", 2)[2]  # <date>-<time>-<the --name it was trained with>
    for model in (run.name, str(run), name):
        rc, out, err = run_cli(
            ["vaep", "rate", project / "vaep.yaml", "--runs-dir", runs, "--model", model, "--top", "0"]
        )
        assert rc == 0, err
        assert out.splitlines()[0] == str(run / "results" / "actions_vaep.parquet")
        assert f"with {run.name}" in err
    after = pd.read_parquet(run / "results" / "actions_vaep.parquet")
    pd.testing.assert_frame_equal(before, after)  # the same model rates the same values


def test_rate_with_an_unknown_model_is_a_one_line_error(project, trained, capsys):
    runs, _, _, _ = trained
    rc = main(["vaep", "rate", str(project / "vaep.yaml"), "--runs-dir", str(runs), "--model", "no-such-run"])
    assert rc == 2
    one_error_line(capsys.readouterr().err, "--model no-such-run", "no such run")


def test_rate_with_a_damaged_model_file_is_a_one_line_error(project, trained, tmp_path, capsys):
    _, run, _, _ = trained
    copy = tmp_path / "runs" / MODEL / run.name
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("results", "checkpoints"))
    blob = (copy / "best.npz").read_bytes()
    (copy / "best.npz").write_bytes(blob[: len(blob) // 2])
    rc = main(["vaep", "rate", str(project / "vaep.yaml"), "--model", str(copy), "--top", "0"])
    assert rc == 2
    one_error_line(capsys.readouterr().err, "best.npz", "not a gradfit VAEP model")
    assert not (copy / "results").exists()


# ------------------------------------------------------------------------------------------------------
# runs and show


def test_runs_lists_the_vaep_run_as_complete(trained, capsys):
    runs, run, _, _ = trained
    results = json.loads((run / "results.json").read_text())
    assert main(["runs", str(runs), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1
    r = rows[0]
    assert (r["model"], r["run"], r["status"], r["workload"]) == (MODEL, run.name, "complete", "vaep")
    assert r["val_loss"] == results["val_loss"] and r["iterations"] == 2 and r["converged"] is True
    assert main(["runs", str(runs)]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if run.name in ln)
    assert "complete" in line and f"{results['val_loss']:.5f}" in line and MODEL in line


def test_show_prints_the_metrics_table(trained, capsys):
    runs, run, _, _ = trained
    results = json.loads((run / "results.json").read_text())
    assert main(["show", str(runs / MODEL / "latest")]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert Path(lines[-1]).resolve() == run.resolve()
    assert "Brier" in lines[1] and "AUC" in lines[1]
    for name in ("mlp", "xgboost"):
        for head in ("scores", "concedes"):
            m = results["metrics"][name][head]
            line = next(ln for ln in lines if ln.split()[:2] == [name, head])
            assert [float(v) for v in line.split()[2:]] == pytest.approx(
                [m["brier"], m["log_loss"], m["auc"], m["base_rate"]], abs=1e-4
            )


# ------------------------------------------------------------------------------------------------------
# Bad input: exit code 2, one line, no run folder


def _bad_config(project: Path, tmp_path: Path, **changes) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("actions.parquet", "players.parquet"):
        (data / name).symlink_to(project / "data" / name)
    return write_config(tmp_path, **changes)


def _out_of_order(project: Path, tmp_path: Path) -> tuple[list[str], tuple[str, ...]]:
    acts = pd.read_parquet(project / "data" / "actions.parquet")
    # rows 100 and 101: same game and period, 101 strictly later; swapped, row 101 goes back in time
    assert (
        acts.loc[100, "game_id"] == acts.loc[101, "game_id"]
        and acts.loc[100, "period_id"] == acts.loc[101, "period_id"]
    )
    assert acts.loc[100, "time_seconds"] < acts.loc[101, "time_seconds"]
    swapped = acts.iloc[[*range(100), 101, 100, *range(102, len(acts))]].reset_index(drop=True)
    path = tmp_path / "shuffled.parquet"
    swapped.to_parquet(path, index=False)
    config = write_config(tmp_path, data={"actions": "shuffled.parquet", "players": None})
    return [config], ("shuffled.parquet", "row 101 is out of order", "sort by game")


def _batch_too_large(project, tmp_path):
    return [_bad_config(project, tmp_path), "--batch-size", "100000"], ("training.batch_size 100000", "only")


CASES = {
    "missing actions file": lambda project, tmp_path: (
        [write_config(tmp_path, data={"actions": "nowhere/actions.parquet", "players": None})],
        ("nowhere/actions.parquet", "actions file not found", "gradfit vaep convert"),
    ),
    "unknown --set key": lambda project, tmp_path: (
        [_bad_config(project, tmp_path), "--set", "training.epoch=2"],
        ("training.epoch=2", "unknown key 'epoch'", "epochs"),
    ),
    "batch size above the training actions": _batch_too_large,
    "invalid precision": lambda project, tmp_path: (
        [_bad_config(project, tmp_path), "--precision", "fp16"],
        ("model.precision", "bf16", "float32"),
    ),
    "invalid precision in the config": lambda project, tmp_path: (
        [_bad_config(project, tmp_path, model={"precision": "half"})],
        ("vaep.yaml", "model.precision"),
    ),
    "out-of-order actions": _out_of_order,
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_leaves_no_run_folder(case, project, tmp_path, capsys):
    args, fragments = CASES[case](project, tmp_path)
    runs = tmp_path / "runs"
    rc = main(["vaep", "train", str(args[0]), *map(str, args[1:]), "--runs-dir", str(runs), "--epochs", "1"])
    err = capsys.readouterr().err
    assert rc == 2, err
    line = one_error_line(err, *fragments)
    if case == "batch size above the training actions":
        games = pd.read_csv(project / "data" / "games.csv")
        n = int(line.split("only ")[1].split()[0])
        assert n in {int(games["actions"].sum() - k) for k in games["actions"]}
    assert not runs.exists() or not any(runs.rglob("*"))


# ------------------------------------------------------------------------------------------------------
# Sweeps over a VAEP config


def _sweep_file(project: Path, folder: Path, **extra) -> Path:
    folder.mkdir()
    base = write_config(
        project, name=f"sweep_base_{folder.name}.yaml", training={"epochs": 2, "batch_size": 256},
        model={"hidden": [16], "precision": "bf16"}, baseline={"xgboost": False},
    )  # fmt: skip
    sweep = {
        "name": "vaep_grid",
        "base": str(base),
        "axes": {"training.learning_rate": [0.001, 0.01], "model.hidden": [[8], [16]]},
        **extra,
    }
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False), encoding="utf-8")
    return path


def test_sweep_grid_over_a_vaep_config(project, tmp_path, capsys):
    path = _sweep_file(project, tmp_path / "grid")
    runs = tmp_path / "sweeps"
    assert main(["sweep", str(path), "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    folder = runs / "vaep_grid"
    table = pd.read_csv(folder / "sweep.csv")
    assert len(table) == 4 and (table["state"] == "complete").all()
    assert table["rank"].tolist() == [1, 2, 3, 4]
    assert table["best"].tolist() == [True, False, False, False]
    # each row's numbers are its run's own results, and its run was trained with its grid values
    seen = set()
    for _, row in table.iterrows():
        run = Path(row["run"])
        results = json.loads((run / "results.json").read_text())
        assert row["val_loss"] == pytest.approx(results["val_loss"], rel=1e-12)
        assert row["-val_loss"] == pytest.approx(-results["val_loss"], rel=1e-12)
        assert results["epochs_run"] == 2 and "xgboost" not in results["metrics"]
        saved = yaml.safe_load((run / "config.yaml").read_text())
        lr, hidden = saved["training"]["learning_rate"], saved["model"]["hidden"]
        assert row["axis:training.learning_rate"] == lr and yaml.safe_load(row["axis:model.hidden"]) == hidden
        seen.add((lr, tuple(hidden)))
    assert seen == {(0.001, (8,)), (0.001, (16,)), (0.01, (8,)), (0.01, (16,))}
    # ranked by validation loss, lowest first
    assert table["val_loss"].is_monotonic_increasing and table["-val_loss"].is_monotonic_decreasing
    assert (folder / "best").resolve() == Path(table.loc[0, "run"]).resolve()

    lines = out.splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.split()[:2] == ["rank", "trial"])
    assert "val_loss" in lines[header].split()
    rows = lines[header + 1 : header + 5]
    assert [int(r.split()[0]) for r in rows] == [1, 2, 3, 4]
    col = lines[header].split().index("val_loss")
    # the axes column holds spaces (two axes), so read the number from the right
    from_right = len(lines[header].split()) - col
    shown = [float(r.split()[-from_right]) for r in rows]
    assert shown == pytest.approx(table["val_loss"].tolist(), abs=1e-4)
    assert lines[header + 5].startswith("best run (trial") and str(table.loc[0, "run"]) in lines[header + 5]
    assert "4 of 4 runs finished" in out

    # the sweep's best model rates like any run: `--model <sweep folder>/best`
    best = Path(table.loc[0, "run"])
    rc = main(["vaep", "rate", str(project / "vaep.yaml"), "--model", str(folder / "best"), "--top", "0"])
    assert rc == 0
    assert Path(json.loads((best / "results" / "ratings.json").read_text())["model_run"]).resolve() == best.resolve()


def test_sweep_with_starts_over_a_vaep_config_is_a_one_line_error(project, tmp_path, capsys):
    path = _sweep_file(project, tmp_path / "starts", starts={"count": 3})
    runs = tmp_path / "sweeps"
    assert main(["sweep", str(path), "--runs-dir", str(runs)]) == 2
    one_error_line(capsys.readouterr().err, "sweep.yaml", "starts:", "ICLV")
    assert not runs.exists()
