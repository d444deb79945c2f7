"""`gradfit fit` into run folders, `gradfit runs`, `gradfit show`, --set precedence, and resume after SIGKILL."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import pandas as pd
import pytest
import yaml

import gradfit
from conftest import mnl_data, mnl_spec
from gradfit.cli.main import main

GRADFIT = [sys.executable, "-c", "from gradfit.cli.main import entry; entry()"]


def write_tiny(folder: Path, **estimation) -> Path:
    mnl_data().to_csv(folder / "mnl.csv", index=False)
    spec = mnl_spec("mnl.csv")
    if estimation:
        spec["estimation"] = estimation
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def run_folders(runs: Path) -> list[Path]:
    return sorted(p for p in runs.glob("*/*") if p.is_dir() and not p.is_symlink()) if runs.exists() else []


def test_fit_writes_a_complete_run_folder(tmp_path, capsys):
    spec = write_tiny(tmp_path, tolerance=1e-7, max_iterations=500)
    runs = tmp_path / "runs"
    argv = ["fit", str(spec), "--runs-dir", str(runs), "--name", "first", "--set", "estimation.optimizer=newton"]
    assert main([*argv, "--set", "estimation.tolerance=1e-9", "--device", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    run = Path(out[-1])  # the last line of stdout is the run folder
    assert run.parent == runs / "tiny_mnl" and run.name.endswith("-first") and len(run.name) == 15 + 6
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "results.json", "estimates.csv", "history.csv", "log.txt", "summary.txt"} <= names
    assert (runs / "tiny_mnl" / "latest").resolve() == run.resolve()

    # config.yaml is the fully resolved configuration and reusable as a spec: flags > file > defaults
    config = gradfit.read_spec(run / "config.yaml")
    assert config.estimation.optimizer == "newton" and config.estimation.tolerance == 1e-9
    assert config.estimation.device == "cpu" and config.estimation.max_iterations == 500
    assert config.integration == gradfit.read_spec(spec).integration  # defaults written out

    res = json.loads((run / "results.json").read_text())
    est = pd.read_csv(run / "estimates.csv", index_col=0)
    assert res["converged"] is True and res["optimizer"] == "newton"
    assert res["n_parameters"] == 2 and res["n_individuals"] == 40 and res["n_observations"] == 160
    assert set(res["estimates"]) == {"asc", "beta_x"}
    assert res["estimates"]["beta_x"]["value"] == pytest.approx(0.9229, abs=1e-3)  # numpy logit, see test_api
    for name, row in res["estimates"].items():
        assert row["value"] == pytest.approx(est.loc[name, "value"], rel=1e-10)
        assert row["robust_std_err"] == pytest.approx(est.loc[name, "robust_std_err"], rel=1e-10)
    assert set(res["timings"]) == {"compile_s", "background_compile_s", "estimate_s", "inference_s", "total_s"}
    assert res["data_sha256"] == hashlib.sha256((tmp_path / "mnl.csv").read_bytes()).hexdigest()
    assert {"gradfit", "jax", "numpy", "python"} <= set(res["versions"])
    assert res["overrides"] == ["estimation.optimizer=newton", "estimation.tolerance=1e-9", "estimation.device=cpu"]
    history = pd.read_csv(run / "history.csv")
    assert list(history.columns[:3]) == ["iteration", "loglikelihood", "gradient_norm"]
    assert list(history["iteration"]) == list(range(res["iterations"] + 1))
    assert history["loglikelihood"].iloc[-1] == pytest.approx(res["loglikelihood"], rel=1e-12)
    assert "Log-likelihood" in (run / "summary.txt").read_text()

    # listed by `gradfit runs`, shown by `gradfit show`
    assert main(["runs", str(runs)]) == 0
    listing = capsys.readouterr().out
    assert run.name in listing and "complete" in listing and f"{res['loglikelihood']:.4f}" in listing
    assert main(["runs", str(runs), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["run"] == run.name and row["converged"] is True and row["n_parameters"] == 2
    assert main(["show", str(runs / "tiny_mnl" / "latest")]) == 0
    shown = capsys.readouterr().out
    assert (run / "summary.txt").read_text() in shown

    # a second run: a new folder, and `latest` moves to it; --json prints the record
    assert main(["fit", str(spec), "--runs-dir", str(runs), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert Path(record["run_dir"]) != run and record["optimizer"] == "trust_bfgs"
    assert (runs / "tiny_mnl" / "latest").resolve() == Path(record["run_dir"]).resolve()
    assert record["loglikelihood"] == pytest.approx(res["loglikelihood"], abs=1e-6)


def test_default_runs_folder_is_beside_the_spec(tmp_path, capsys, monkeypatch):
    spec = write_tiny(tmp_path)
    monkeypatch.chdir(tmp_path.parent)  # not the spec's folder: nothing is written into the working directory
    assert main(["fit", str(spec)]) == 0
    run = Path(capsys.readouterr().out.splitlines()[-1])
    assert run.parent == tmp_path / "runs" / "tiny_mnl"


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--set", "integration.nn=4"], ["--set", "unknown key 'nn'", "did you mean n"]),
        (["--set", "estimation.optimizer=adam"], ["estimation.optimizer", "bfgs"]),
        (["--device", "tpu"], ["estimation.device", "cpu"]),
        (["--name", "a b"], ["--name"]),
    ],
)
def test_bad_options_exit_2_and_leave_no_run_folder(tmp_path, capsys, extra, fragments):
    spec = write_tiny(tmp_path)
    runs = tmp_path / "runs"
    assert main(["fit", str(spec), "--runs-dir", str(runs), *extra]) == 2
    line = one_error_line(capsys.readouterr().err)
    for fragment in fragments:
        assert fragment in line
    assert run_folders(runs) == []


def test_unwritable_runs_dir(tmp_path, capsys):
    spec = write_tiny(tmp_path)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    assert main(["fit", str(spec), "--runs-dir", str(blocker / "runs")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--runs-dir" in line and str(blocker) in line


def test_resume_refuses_complete_and_different_runs(tmp_path, capsys):
    spec = write_tiny(tmp_path)
    runs = tmp_path / "runs"
    assert main(["fit", str(spec), "--runs-dir", str(runs)]) == 0
    run = capsys.readouterr().out.splitlines()[-1]
    assert main(["fit", str(spec), "--resume", run]) == 2
    assert "complete" in one_error_line(capsys.readouterr().err)
    Path(run, "results.json").unlink()  # as if it had been killed
    assert main(["fit", str(spec), "--resume", run, "--set", "estimation.tolerance=1e-3"]) == 2
    assert "differs from the run's config.yaml at estimation.tolerance" in one_error_line(capsys.readouterr().err)
    assert main(["show", run]) == 0
    assert "incomplete" in capsys.readouterr().out


def _medium_model(folder: Path) -> Path:
    """300 people, 2 latent variables, 59 parameters: about 30 ms per iteration on 2 cores, ~60 iterations."""
    from gradfit.iclv.simulate import seed_model

    sim = seed_model(n_people=300, n_tasks=8, n_latent=2, per_latent=3, n_draws=200, seed=5)
    sim.data.to_csv(folder / "data.csv", index=False)
    spec = dict(sim.spec)
    spec["data"] = {**spec["data"], "path": "data.csv"}
    path = folder / "medium.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def test_resume_after_sigkill_reaches_the_same_estimates(tmp_path):
    spec = _medium_model(tmp_path)
    runs = tmp_path / "runs"
    # the session's compilation cache (conftest.py): the three processes compile the same programs once
    env = {
        **os.environ,
        "JAX_COMPILATION_CACHE_DIR": jax.config.jax_compilation_cache_dir or "",
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5",
    }
    proc = subprocess.Popen(
        [*GRADFIT, "fit", str(spec), "--runs-dir", str(runs), "--name", "killed", "--checkpoint-seconds", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    checkpoint = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(runs.glob("*/*-killed/checkpoint.json"))
        if found:
            try:
                if json.loads(found[0].read_text())["iteration"] >= 8:
                    checkpoint = found[0]
                    break
            except (ValueError, KeyError):
                pass  # never half-written (atomic), but be safe
        time.sleep(0.02)
    assert checkpoint is not None, f"no checkpoint before the fit ended: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = checkpoint.parent
    assert not (run / "results.json").exists()
    listing = subprocess.run([*GRADFIT, "runs", str(runs)], capture_output=True, text=True, env=env).stdout
    assert "incomplete" in listing

    resumed = subprocess.run(
        [*GRADFIT, "fit", str(spec), "--resume", str(run)], capture_output=True, text=True, env=env
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert resumed.stdout.splitlines()[-1] == str(run)
    fresh = subprocess.run(
        [*GRADFIT, "fit", str(spec), "--runs-dir", str(runs)], capture_output=True, text=True, env=env
    )
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    a = json.loads((run / "results.json").read_text())
    b = json.loads((Path(fresh.stdout.splitlines()[-1]) / "results.json").read_text())
    assert a["converged"] and b["converged"]
    assert a["resumed_from_iteration"] >= 8
    assert a["loglikelihood"] == pytest.approx(b["loglikelihood"], abs=1e-4)
    for name, est in b["estimates"].items():
        assert abs(a["estimates"][name]["value"] - est["value"]) <= 0.02 * est["std_err"], name
    history = pd.read_csv(run / "history.csv")
    assert history["iteration"].is_monotonic_increasing and history["iteration"].is_unique


def test_real_process_exit_codes_and_stdout(tmp_path):
    """The installed entry point, as a user meets it: exit 2 with one line for a bad --set; 0 and the folder last."""
    spec = write_tiny(tmp_path)
    runs = tmp_path / "runs"
    bad = subprocess.run(
        [*GRADFIT, "fit", str(spec), "--runs-dir", str(runs), "--set", "estimation.tolerence=1e-8"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert "tolerance" in one_error_line(bad.stderr) and run_folders(runs) == []
    good = subprocess.run(
        [*GRADFIT, "fit", str(spec), "--runs-dir", str(runs), "--set", "estimation.optimizer=newton"],
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0, good.stderr[-2000:]
    run = Path(good.stdout.splitlines()[-1])
    assert run_folders(runs) == [run] and json.loads((run / "results.json").read_text())["optimizer"] == "newton"
    assert "iter" in good.stderr and "Traceback" not in good.stderr
