"""`gradfit bench`: what it times and how it reports (not how fast: speed targets live in benchmarks/)."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
import yaml

import gradfit
from conftest import mnl_data, mnl_spec
from gradfit.bench import run_bench
from gradfit.cli.main import main


@pytest.fixture
def tiny(tmp_path):
    mnl_data().to_csv(tmp_path / "mnl.csv", index=False)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(mnl_spec("mnl.csv")), encoding="utf-8")
    return path


def test_fd_and_autodiff_on_the_cpu(tiny):
    spec = gradfit.read_spec(tiny)
    res = run_bench(spec, ["fd", "autodiff"], ["cpu"], repeat=3, fd_repeat=2)
    by = {t.method: t for t in res.timings}
    assert set(by) == {"fd", "autodiff"} and res.n_parameters == 2 and res.n_individuals == 40
    assert by["fd"].evaluations == res.n_parameters + 1 and by["autodiff"].evaluations == 1
    # the forward differences approximate the autodiff gradient to their own accuracy (~sqrt(eps) |g|)
    g = np.array(list(gradfit.Model(spec).gradient().values()))
    assert by["fd"].max_abs_diff < 1e-5 * max(1.0, np.abs(g).max())
    assert all(t.median_s > 0 and t.repeats >= 2 for t in res.timings)
    ups = {(s["method"], s["device"]): s["speedup"] for s in res.speedups()}
    assert ups[("fd", "cpu")] == pytest.approx(1.0)
    assert ups[("autodiff", "cpu")] == pytest.approx(by["fd"].median_s / by["autodiff"].median_s)


def test_cli_json_and_skipped_devices(tiny, capsys):
    rc = main(["bench", str(tiny), "--devices", "cpu,gpu", "--repeat", "2", "--fd-repeat", "1", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    devices = {t["device"] for t in out["timings"]}
    try:
        has_gpu = bool(jax.devices("gpu"))
    except RuntimeError:
        has_gpu = False
    assert devices == ({"cpu", "gpu"} if has_gpu else {"cpu"})
    assert bool(out["skipped"]) is not has_gpu
    assert {s["method"] for s in out["speedups"]} == {"fd", "autodiff"}


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--methods", "fd,symbolic"], "--methods"),
        (["--devices", "tpu"], "--devices"),
        (["--repeat", "0"], "--repeat"),
    ],
)
def test_bad_options(tiny, capsys, argv, fragment):
    assert main(["bench", str(tiny), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0]


def test_table_output(tiny, capsys):
    assert main(["bench", str(tiny), "--devices", "cpu", "--repeat", "2", "--fd-repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "autodiff" in out and "fd" in out and "speed-up against fd on cpu" in out


def test_precisions_report_their_error_against_float64(tiny):
    """Each precision is timed, and its LL, gradient and fitted estimates are compared with float64's, which
    is added as the reference; the errors are those of single precision: nonzero and small."""
    spec = gradfit.read_spec(tiny)
    res = run_bench(spec, ["autodiff"], ["cpu"], repeat=2, fit=True, precisions=["float32", "mixed"])
    assert {t.precision for t in res.timings} == {"float32", "mixed", "float64"}
    errors = {e["precision"]: e for e in res.precision_errors}
    assert set(errors) == {"float32", "mixed"}
    exact = gradfit.Model(spec).fit()
    for e in errors.values():
        assert 0 < e["ll_rel_error"] < 1e-5 and 0 < e["grad_max_rel_error"] < 1e-2
        assert e["estimates_max_abs_error"] < 0.01 * np.abs(exact.theta).max()
        assert e["estimates_max_shift_in_se"] < 0.1
    assert {f["precision"] for f in res.fits} == {"float32", "mixed", "float64"}


def test_cli_precisions_table_and_bad_precision(tiny, capsys):
    argv = ["bench", str(tiny), "--devices", "cpu", "--methods", "autodiff", "--repeat", "2"]
    assert main([*argv, "--precisions", "float64,mixed"]) == 0
    out = capsys.readouterr().out
    assert "Error against float64" in out and "cpu mixed: LL" in out
    assert main([*argv, "--precisions", "bfloat16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--precisions" in err[0]
