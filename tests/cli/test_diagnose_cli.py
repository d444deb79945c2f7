"""`gradfit diagnose SPEC` in-process through `main()`: exit 0 ok, 3 warnings, 4 critical, 2 user error.

Truths: a binary logit's log-likelihood and gradient in closed form (at the start and at a fit's estimates),
and the fit's own results.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.special import expit

from conftest import mnl_data, mnl_spec
from gradfit.cli.main import main


def write_spec(folder: Path, utility: str | None = None, extra: dict | None = None, frame=None) -> Path:
    """The tiny binary logit of conftest (optionally another 'yes' utility and more parameters) as files."""
    (mnl_data() if frame is None else frame).to_csv(folder / "mnl.csv", index=False)
    spec = mnl_spec("mnl.csv")
    if utility is not None:
        spec["choice"]["alternatives"]["yes"]["utility"] = utility
    spec["parameters"].update(extra or {})
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def logit_ll_and_gradient(asc: float, beta_x: float) -> tuple[float, dict[str, float]]:
    df = mnl_data()
    x, y = df["x"].to_numpy(), df["choice"].to_numpy()
    p = expit(asc + beta_x * x)
    ll = float(np.log(np.where(y == 1, p, 1 - p)).sum())
    return ll, {"asc": float((y - p).sum()), "beta_x": float(((y - p) * x).sum())}


def diagnose_json(capsys, argv: list[str], expected_rc: int) -> dict:
    assert main(["diagnose", *argv, "--json"]) == expected_rc
    out = json.loads(capsys.readouterr().out)
    assert out["exit_code"] == expected_rc
    return out


def test_correct_model_exits_0(tmp_path, capsys):
    spec = write_spec(tmp_path)
    assert main(["diagnose", str(spec), "--all"]) == 0
    out = capsys.readouterr().out
    assert "Severity: ok (exit code 0)" in out and "WRONG" not in out
    assert "asc" in out and "beta_x" in out

    d = diagnose_json(capsys, [str(spec)], 0)
    ll, grad = logit_ll_and_gradient(0.0, 0.0)  # the start values
    assert d["severity"] == "ok" and d["at"] == "start"
    assert d["loglikelihood"] == pytest.approx(ll, rel=1e-12)
    for row in d["gradient"]:
        assert row["autodiff"] == pytest.approx(grad[row["parameter"]], rel=1e-10)
        assert row["flagged"] is False
    assert {f["check"] for f in d["findings"]} == {"nonfinite", "gradient", "identification", "noise", "quadrature"}


def test_at_a_run_diagnoses_the_estimates(tmp_path, capsys):
    spec = write_spec(tmp_path)
    runs = tmp_path / "runs"
    assert main(["fit", str(spec), "--runs-dir", str(runs), "--set", "estimation.tolerance=1e-9"]) == 0
    run = Path(capsys.readouterr().out.splitlines()[-1])
    results = json.loads((run / "results.json").read_text())
    est = {k: v["value"] for k, v in results["estimates"].items()}

    start = diagnose_json(capsys, [str(spec)], 0)
    at = diagnose_json(capsys, [str(spec), "--at", str(run)], 0)
    assert at["at"] == str(run.resolve())
    assert at["loglikelihood"] == pytest.approx(results["loglikelihood"], rel=1e-12)
    _, grad = logit_ll_and_gradient(est["asc"], est["beta_x"])
    g_start = max(abs(r["autodiff"]) for r in start["gradient"])
    for row in at["gradient"]:
        assert row["autodiff"] == pytest.approx(grad[row["parameter"]], abs=1e-9)
        assert abs(row["autodiff"]) < 1e-4 * g_start  # an optimum: the gradient is ~0
    assert all(f["severity"] == 0 for f in at["findings"])  # incl. no negative curvature at the estimates


def test_bad_at_path_is_one_line_exit_2(tmp_path, capsys):
    spec = write_spec(tmp_path)
    missing = tmp_path / "no-such-run"
    assert main(["diagnose", str(spec), "--at", str(missing)]) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(missing) in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""


def test_unidentified_constant_exits_4(tmp_path, capsys):
    spec = write_spec(tmp_path, "asc + asc2 + beta_x * x", {"asc2": 0.0})
    assert main(["diagnose", str(spec)]) == 4
    out = capsys.readouterr().out
    assert "Severity: CRITICAL (exit code 4)" in out
    (line,) = [line for line in out.splitlines() if "not identified" in line]
    assert "asc" in line and "asc2" in line

    d = diagnose_json(capsys, [str(spec)], 4)
    (critical,) = [f for f in d["findings"] if f["severity"] == 4]
    assert critical["check"] == "identification" and set(critical["details"]["parameters"]) == {"asc", "asc2"}


def test_weakly_identified_exits_3(tmp_path, capsys):
    df = mnl_data()
    df["x2"] = df["x"] + 3e-5 * np.random.default_rng(12345).normal(size=len(df))  # see test_checks.py
    spec = write_spec(tmp_path, "asc + beta_x * x + beta_x2 * x2", {"beta_x2": 0.0}, frame=df)
    d = diagnose_json(capsys, [str(spec)], 3)
    assert d["severity"] == "warning"
    (warning,) = [f for f in d["findings"] if f["severity"] != 0]
    assert warning["check"] == "identification" and set(warning["details"]["parameters"]) == {"beta_x", "beta_x2"}
    assert main(["diagnose", str(spec)]) == 3
    assert "Severity: warning (exit code 3)" in capsys.readouterr().out


def test_nonfinite_start_through_set_exits_4(tmp_path, capsys):
    spec = write_spec(tmp_path, "asc + beta_x * x + gamma * log(delta + x)", {"gamma": 0.2, "delta": 5.0})
    d = diagnose_json(capsys, [str(spec), "--set", "parameters.delta.start=0.5"], 4)
    (finding,) = d["findings"]
    df = mnl_data()
    bad = set(df.loc[df["x"] < -0.5, "id"])
    assert finding["check"] == "nonfinite" and finding["details"]["component"] == "choice"
    assert {p["person"] for p in finding["details"]["people"]} <= bad and "delta" in finding["details"]["parameters"]
