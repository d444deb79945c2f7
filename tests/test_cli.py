"""The `gradfit` command line, called in-process through `gradfit.cli.main.main(argv) -> exit code`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

import gradfit
from conftest import mnl_data, mnl_spec
from gradfit.cli.main import main


def write_tiny(folder: Path, spec: dict | None = None) -> Path:
    mnl_data().to_csv(folder / "mnl.csv", index=False)
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec or mnl_spec("mnl.csv"), sort_keys=False), encoding="utf-8")
    return path


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {err!r}"
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    return lines[0]


def test_simulate_writes_data_truth_and_spec(tmp_path, capsys):
    out = tmp_path / "sim"
    rc = main(["simulate", "--out", str(out), "--people", "20", "--tasks", "3", "--draws", "10", "--seed", "5"])
    assert rc == 0
    assert {p.name for p in out.iterdir()} >= {"data.csv", "truth.json", "seed_iclv.yaml"}
    data = pd.read_csv(out / "data.csv")
    assert len(data) == 20 * 3 and data["id"].nunique() == 20
    truth = json.loads((out / "truth.json").read_text())
    spec = gradfit.read_spec(out / "seed_iclv.yaml")
    assert spec.integration.n == 10
    assert Path(spec.data.path) == (out / "data.csv").resolve()
    free = [n for n, p in spec.parameters.items() if not p.fixed]
    assert sorted(truth) == sorted(free)
    assert "seed_iclv.yaml" in capsys.readouterr().out


def test_simulate_is_reproducible(tmp_path):
    args = ["simulate", "--people", "5", "--tasks", "2", "--draws", "4", "--seed", "9", "--out"]
    assert main([*args, str(tmp_path / "a")]) == 0
    assert main([*args, str(tmp_path / "b")]) == 0
    for name in ("data.csv", "truth.json", "seed_iclv.yaml"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_simulate_rejects_bad_sizes(tmp_path, capsys):
    rc = main(["simulate", "--out", str(tmp_path), "--people", "1"])
    assert rc == 2
    assert "--people" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("optimizer", [None, "newton", "box_trust_bfgs"])
def test_fit_prints_the_estimates(tmp_path, capsys, optimizer):
    path = write_tiny(tmp_path)
    argv = ["fit", str(path)] + ([] if optimizer is None else ["--optimizer", optimizer])
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "tiny_mnl" in out and "Log-likelihood" in out
    assert f"Optimizer: {optimizer or 'trust_bfgs'}" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1] in (["asc"], ["beta_x"])}
    assert set(rows) == {"asc", "beta_x"}
    assert abs(float(rows["beta_x"][1]) - 0.9229) < 1e-3  # the ML estimate (numpy logit, see test_api)


def test_fit_with_a_bad_spec_says_one_line(tmp_path, capsys):
    spec = mnl_spec("mnl.csv")
    spec["choice"]["alternatives"]["yes"]["utility"] = "asc + beta_y * x"
    path = write_tiny(tmp_path, spec)
    assert main(["fit", str(path)]) == 2
    cap = capsys.readouterr()
    line = one_error_line(cap.err)
    assert "beta_y" in line and "did you mean 'beta_x'" in line
    assert cap.out == ""


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("name: x\ndata: {path: mnl.csv, person: id\nparameters: {}\n", "line"),
        ("name: x\ndata: {path: mnl.csv, person: id}\nparameters: {a: 1}\nchoise: {}\n", "choise"),
        (None, "not found"),
    ],
    ids=["yaml syntax", "unknown key", "missing file"],
)
def test_fit_user_errors_exit_2_without_traceback(tmp_path, capsys, content, fragment):
    path = tmp_path / "spec.yaml"
    if content is not None:
        path.write_text(content)
    assert main(["fit", str(path)]) == 2
    assert fragment in one_error_line(capsys.readouterr().err)


def test_fit_missing_data_file(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(mnl_spec("elsewhere/mnl.csv")))
    assert main(["fit", str(path)]) == 2
    assert "mnl.csv" in one_error_line(capsys.readouterr().err)


def test_fit_unknown_optimizer(tmp_path, capsys):
    path = write_tiny(tmp_path)
    assert main(["fit", str(path), "--optimizer", "adam"]) == 2
    assert "adam" in one_error_line(capsys.readouterr().err)


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "fit" in out and "simulate" in out


@pytest.mark.parametrize(
    "argv", [["fit"], ["no-such-command"], ["simulate", "--people", "many"]], ids=["missing arg", "command", "int"]
)
def test_usage_errors_exit_2(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1, err
