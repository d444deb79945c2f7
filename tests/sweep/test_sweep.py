"""`gradfit sweep`: grids, multistart and draw studies as run folders; resume; workers; PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import mnl_data, mnl_spec
from gradfit.cli.main import main
from gradfit.runs import RESULTS


def _project(tmp_path: Path, sweep: dict) -> Path:
    mnl_data().to_csv(tmp_path / "mnl.csv", index=False)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(mnl_spec("mnl.csv")), encoding="utf-8")
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": "tiny.yaml", **sweep}), encoding="utf-8")
    return path


def _complete_runs(folder: Path) -> dict[str, int]:
    """combination key -> number of complete run folders for it (from each run's config.yaml / results)."""
    out: dict[str, int] = {}
    for results in folder.glob("*/*/" + RESULTS):
        if results.parent.is_symlink():  # the model folder's `latest` link
            continue
        record = json.loads(results.read_text())
        key = "|".join(sorted(record["overrides"]))
        out[key] = out.get(key, 0) + 1
    return out


GRID = {
    "name": "grid",
    "axes": {"estimation.optimizer": ["bfgs", "newton"], "integration.n": [1, 3]},
    "criterion": "bic",
}


def test_grid_writes_run_folders_tables_and_a_draw_study(tmp_path, capsys):
    path = _project(tmp_path, GRID)
    assert main(["sweep", str(path)]) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "runs" / "grid"
    table = pd.read_csv(folder / "sweep.csv")
    assert len(table) == 4 and table["best"].sum() == 1 and bool(table.loc[0, "best"])
    assert set(table["axis:estimation.optimizer"]) == {"bfgs", "newton"}
    assert table["-bic"].is_monotonic_decreasing
    # the criterion is minus BIC from each run's own results.json
    for _, row in table.iterrows():
        record = json.loads((Path(row["run"]) / RESULTS).read_text())
        assert row["-bic"] == pytest.approx(-record["bic"], rel=1e-12)
    assert sorted(_complete_runs(folder).values()) == [1, 1, 1, 1]
    summary = json.loads((folder / "sweep.json").read_text())
    assert summary["complete"] and summary["finished"] == 4 and summary["best"]["run"] == table.loc[0, "run"]
    assert (folder / "sweep.log").read_text().count(": bic ") == 4  # the log names the criterion
    assert (folder / "draws_integration.n.csv").is_file() and (folder / "draws_integration.n.png").is_file()
    assert "best" in out.lower() and str(table.loc[0, "run"]) in out
    # running it again runs nothing more
    assert main(["sweep", str(path)]) == 0
    assert sorted(_complete_runs(folder).values()) == [1, 1, 1, 1]


def test_multistart_finds_the_one_optimum_of_a_logit(tmp_path):
    path = _project(tmp_path, {"name": "ms", "starts": {"count": 4, "scale": 1.0, "seed": 3}})
    assert main(["sweep", str(path)]) == 0
    folder = tmp_path / "runs" / "ms"
    table = pd.read_csv(folder / "sweep.csv")
    assert sorted(table["start"]) == [0, 1, 2, 3]
    starts = [json.loads((Path(r) / RESULTS).read_text())["overrides"] for r in table["run"]]
    assert len({tuple(s) for s in starts}) == 4  # four different start vectors
    (group,) = json.loads((folder / "multistart.json").read_text())["groups"]
    # the logit's log-likelihood is concave: every start reaches the one optimum
    assert group["starts"] == 4 and group["reached_best"] == 4 and len(group["optima"]) == 1
    assert table["loglikelihood"].max() - table["loglikelihood"].min() < 1e-6


def _run_cli(path: Path, *extra: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "GRADFIT_COMPILATION_CACHE": "0", "GRADFIT_CPU_DEVICES": "1"}
    argv = [sys.executable, "-m", "gradfit", "sweep", str(path), "--heartbeat", "1", *extra]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["killed", "ctrl-c"])
def test_a_stopped_sweep_resumes_without_repeating_or_losing_a_run(tmp_path, stop):
    """SIGKILL: the dead worker's run comes back once its heartbeat is overdue; Ctrl-C: it is queued again at
    once. Either way every combination ends with exactly one complete run folder."""
    path = _project(
        tmp_path, {**GRID, "name": "killed", "axes": {**GRID["axes"], "estimation.tolerance": [1e-6, 1e-7]}}
    )
    folder = tmp_path / "runs" / "killed"
    proc = _run_cli(path)
    deadline = time.monotonic() + 240
    while not list(folder.glob("*/*/" + RESULTS)):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "timeout"
        time.sleep(0.2)
    time.sleep(0.5)  # into the next run
    proc.send_signal(stop)
    proc.wait(timeout=60)
    done_before = sum(_complete_runs(folder).values())
    assert 1 <= done_before < 8
    resumed = _run_cli(path)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-2000:]
    counts = _complete_runs(folder)
    assert len(counts) == 8 and set(counts.values()) == {1}
    assert len(pd.read_csv(folder / "sweep.csv")) == 8


def test_two_workers_share_one_queue_and_never_run_the_same_combination(tmp_path):
    axes = {**GRID["axes"], "estimation.tolerance": [1e-6, 1e-7]}
    path = _project(tmp_path, {**GRID, "name": "pair", "axes": axes})
    proc = _run_cli(path, "--workers", "2")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    folder = tmp_path / "runs" / "pair"
    counts = _complete_runs(folder)
    assert len(counts) == 8 and set(counts.values()) == {1}
    pids = {line.split("]")[0] for line in (folder / "sweep.log").read_text().splitlines() if ": bic " in line}
    assert len(pids) == 2  # both workers ran some


def test_postgres_storage(tmp_path, postgres_url):
    path = _project(tmp_path, GRID)
    assert main(["sweep", str(path), "--storage", postgres_url]) == 0
    folder = tmp_path / "runs" / "grid"
    assert not (folder / "sweep.db").exists()
    assert sorted(_complete_runs(folder).values()) == [1, 1, 1, 1]
    assert len(pd.read_csv(folder / "sweep.csv")) == 4


@pytest.mark.parametrize(
    ("sweep", "fragment"),
    [
        ({"name": "x", "axes": {"integration.nn": [1]}}, "unknown key 'nn'"),
        ({"name": "x", "axes": {"integration.n": []}}, "axes.integration.n: an empty list"),
        ({"name": "x", "criterion": "r2"}, "criterion"),
        ({"name": "x", "starts": {"count": 0}}, "starts.count"),
    ],
)
def test_bad_sweep_files_are_one_line_errors(tmp_path, capsys, sweep, fragment):
    path = _project(tmp_path, sweep)
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0] and str(path) in err[0]
    assert not (tmp_path / "runs" / "x").exists()


def test_shipped_sweep_files_are_valid():
    """Every examples/**/*sweep*.yaml reads, names a base spec that reads, and lists valid axis values."""
    from gradfit.cli.sweep import _workload
    from gradfit.sweep import combinations, read_sweep

    root = Path(__file__).resolve().parents[2] / "examples"
    files = sorted(root.glob("**/*sweep*.yaml"))
    assert len(files) >= 2
    for path in files:
        sweep, base_path, base = read_sweep(path, _workload(path)[0])  # the workload its base names
        assert base_path.is_file() and len(combinations(sweep, base)) >= 2
