"""`gradfit compare` and `gradfit.runs.compare`: real run folders from small binary-logit fits.

Truths: each run's log-likelihood recomputed with numpy (a closed-form binary logit) at the estimates its
results.json holds, the parameter counts of the specs as written here, scipy's chi-squared, and the
results.json files themselves for what the tables and the CSV must carry.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.special import expit
from scipy.stats import chi2

from gradfit.cli.main import main
from gradfit.runs import RunError
from gradfit.runs.compare import compare_runs

UTILITY = "asc + b1 * x1 + b2 * x2"
CORPUS = Path(__file__).parents[2] / "examples" / "bilm" / "corpus.txt"


def logit_data(seed: int, n_people: int = 40, n_tasks: int = 4) -> pd.DataFrame:
    """Binary choices with a large effect of x1 (1.5) and none of x2."""
    rng = np.random.default_rng(seed)
    n = n_people * n_tasks
    x1, x2 = rng.normal(size=n).round(4), rng.normal(size=n).round(4)
    choice = (rng.random(n) < expit(0.3 + 1.5 * x1)).astype(int)
    return pd.DataFrame({"id": np.repeat(np.arange(1, n_people + 1), n_tasks), "x1": x1, "x2": x2, "choice": choice})


def write_spec(folder: Path, name: str, utility: str, parameters: dict, data: str, **estimation) -> Path:
    spec = {
        "name": name,
        "data": {"path": data, "person": "id"},
        "parameters": parameters,
        # one Gauss-Hermite node of an unused latent variable: exactly the plain logit (see conftest.mnl_spec)
        "latent_variables": {"unused": {"mean": "0"}},
        "integration": {"type": "gauss_hermite", "n": 1},
        "choice": {"column": "choice",
                   "alternatives": {"no": {"code": 0, "utility": "0"}, "yes": {"code": 1, "utility": utility}}},
    }  # fmt: skip
    if estimation:
        spec["estimation"] = estimation
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def fit(spec: Path, runs: Path) -> Path:
    assert main(["fit", str(spec), "--runs-dir", str(runs)]) == 0
    return (runs / yaml.safe_load(spec.read_text())["name"] / "latest").resolve()


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> dict[str, Path]:
    """Run folders by model name; free parameters: general 3, no_x2 2 (b2 fixed at 0), only_x2 2, const 1."""
    folder = tmp_path_factory.mktemp("compare")
    logit_data(1).to_csv(folder / "a.csv", index=False)
    logit_data(2).to_csv(folder / "b.csv", index=False)  # the same sizes, other draws
    free3 = {"asc": 0.0, "b1": 0.0, "b2": 0.0}
    specs = {
        "general": write_spec(folder, "general", UTILITY, free3, "a.csv"),
        "no_x2": write_spec(folder, "no_x2", UTILITY, {**free3, "b2": {"start": 0.0, "fixed": True}}, "a.csv"),
        "only_x2": write_spec(folder, "only_x2", "asc + b2 * x2", {"asc": 0.0, "b2": 0.0}, "a.csv"),
        "const": write_spec(folder, "const", "asc", {"asc": 0.0}, "a.csv"),
        "general_b": write_spec(folder, "general_b", UTILITY, free3, "b.csv"),
        # one iteration from far away: a general model left well below the restricted models' maxima
        "stuck": write_spec(folder, "stuck", UTILITY, {"asc": 3.0, "b1": -3.0, "b2": 3.0}, "a.csv", max_iterations=1),
    }
    return {name: fit(spec, folder / "runs") for name, spec in specs.items()}


def results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


def numpy_ll(run: Path) -> float:
    """The binary logit's log-likelihood at the run's estimates (fixed values included), on the run's data."""
    res = results(run)
    theta = {"asc": 0.0, "b1": 0.0, "b2": 0.0, **res["fixed"]}
    theta.update({name: est["value"] for name, est in res["estimates"].items()})
    data = pd.read_csv(yaml.safe_load((run / "config.yaml").read_text())["data"]["path"])
    p = expit(theta["asc"] + theta["b1"] * data["x1"] + theta["b2"] * data["x2"])
    return float(np.log(np.where(data["choice"] == 1, p, 1 - p)).sum())


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_lr_tests_of_every_nested_pair(fitted):
    runs = {name: fitted[name] for name in ("no_x2", "general", "const")}
    cmp = compare_runs(list(runs.values()))
    k = {"general": 3, "no_x2": 2, "const": 1}  # the specs above
    tests = {(t.restricted, t.general): t for t in cmp.tests.itertuples()}
    assert set(tests) == {("no_x2", "general"), ("const", "general"), ("const", "no_x2")}
    for (r, g), t in tests.items():
        lr = 2 * (numpy_ll(runs[g]) - numpy_ll(runs[r]))
        assert t.lr == pytest.approx(lr, rel=1e-9, abs=1e-9)
        assert t.df == k[g] - k[r]
        assert t.p_value == pytest.approx(chi2.sf(lr, k[g] - k[r]), rel=1e-6, abs=1e-12)
        assert t.note == ""
    assert tests[("const", "general")].p_value < 1e-6  # x1's true effect is 1.5: dropping it is rejected
    assert cmp.notes == ()

    # fit statistics: k counted from the specs, LL and counts as the runs recorded them
    assert list(cmp.fit.index) == list(runs)
    for name, run in runs.items():
        res = results(run)
        row = cmp.fit.loc[name]
        assert row["n_parameters"] == k[name] and row["loglikelihood"] == pytest.approx(numpy_ll(run), rel=1e-9)
        assert (row["n_observations"], row["n_individuals"], row["converged"]) == (160, 40, True)
        assert row["aic"] == pytest.approx(2 * k[name] - 2 * numpy_ll(run), rel=1e-9)
        assert row["integration"] == "gauss_hermite n=1" and row["run"] == str(run)

    # estimates side by side: rows in first-seen spec order, b2 fixed at 0 in no_x2, absent from const
    est = cmp.estimates
    assert list(est.index) == ["asc", "b1", "b2"]
    for name, run in runs.items():
        res = results(run)
        for param, e in res["estimates"].items():
            assert est.at[param, (name, "value")] == e["value"]
            assert est.at[param, (name, "robust_std_err")] == e["robust_std_err"]
            assert est.at[param, (name, "fixed")] == False  # noqa: E712 (pandas' nullable boolean)
    assert est.at["b2", ("no_x2", "value")] == 0.0 and est.at["b2", ("no_x2", "fixed")] == True  # noqa: E712
    assert np.isnan(est.at["b2", ("no_x2", "robust_std_err")])
    assert est.loc[["b1", "b2"], ("const", "fixed")].isna().all()
    assert est.loc[["b1", "b2"], ("const", "value")].isna().all()


def test_general_model_below_its_restriction_is_kept_with_a_note(fitted):
    cmp = compare_runs([fitted["stuck"], fitted["no_x2"]])
    (t,) = cmp.tests.itertuples()
    assert (t.restricted, t.general, t.df) == ("no_x2", "stuck", 1)
    lr = 2 * (numpy_ll(fitted["stuck"]) - numpy_ll(fitted["no_x2"]))
    assert lr < 0 and t.lr == pytest.approx(lr, rel=1e-9)
    assert "not at its maximum" in t.note and "did not converge" in t.note


def test_pairs_that_are_not_nested_get_no_test(fitted):
    # neither parameter set contains the other: {asc, b1} (b2 fixed) and {asc, b2}
    cmp = compare_runs([fitted["no_x2"], fitted["only_x2"]])
    assert cmp.tests.empty and len(cmp.notes) == 1 and "no pair of runs is nested" in cmp.notes[0]
    # nested parameters, but another data file of the same size
    cmp = compare_runs([fitted["const"], fitted["general_b"], fitted["no_x2"]])
    assert [(t.restricted, t.general) for t in cmp.tests.itertuples()] == [("const", "no_x2")]
    assert any("const within general_b" in n and "data_sha256" in n for n in cmp.notes)
    assert any("no_x2 within general_b" in n for n in cmp.notes)
    # the same free parameters on the same data (one model from two starts) is not a nesting either
    assert compare_runs([fitted["general"], fitted["stuck"]]).tests.empty


def test_cli_prints_the_tables_and_writes_the_csv(fitted, tmp_path, capsys):
    names = ["general", "no_x2", "const"]
    out_csv = tmp_path / "side_by_side.csv"
    assert main(["compare", *(str(fitted[n]) for n in names), "--csv", str(out_csv)]) == 0
    out = capsys.readouterr().out
    lr = 2 * (numpy_ll(fitted["general"]) - numpy_ll(fitted["const"]))
    assert f"{lr:.4f}" in out and "likelihood-ratio tests" in out
    assert f"{numpy_ll(fitted['no_x2']):.4f}" in out and "0.0000 (fixed)" in out

    table = pd.read_csv(out_csv, index_col="parameter")
    for name in names:
        res = results(fitted[name])
        for param, e in res["estimates"].items():
            assert table.at[param, f"{name} value"] == pytest.approx(e["value"], rel=1e-11)
            assert table.at[param, f"{name} robust_std_err"] == pytest.approx(e["robust_std_err"], rel=1e-11)
            assert table.at[param, f"{name} fixed"] == False  # noqa: E712
        for param, value in res["fixed"].items():
            assert table.at[param, f"{name} value"] == value and table.at[param, f"{name} fixed"] == True  # noqa: E712
        absent = set(table.index) - set(res["estimates"]) - set(res["fixed"])
        assert table.loc[list(absent), f"{name} value"].isna().all()
    assert set(table.index) == {"asc", "b1", "b2"}

    # latest links work as RUNs; a pair that is not nested prints why instead of a test table
    runs_dir = fitted["general"].parents[1]
    assert main(["compare", str(runs_dir / "no_x2" / "latest"), str(runs_dir / "only_x2" / "latest")]) == 0
    out = capsys.readouterr().out
    assert "likelihood-ratio tests" not in out and "note: no LR tests" in out


def tiny_bilm_run(folder: Path) -> Path:
    """A real (tiny) biLM run folder: compare must refuse it."""
    (folder / "corpus.txt").write_text("\n".join(CORPUS.read_text().splitlines()[:200]) + "\n", encoding="utf-8")
    config = {
        "workload": "bilm", "name": "tiny",
        "data": {"corpus": "corpus.txt", "vocab_size": 300, "max_chars": 12, "window": 10, "validation": 0.1},
        "model": {"size": "small", "char_embed": 4, "filters": [[1, 8], [2, 8]], "highway": 1, "projection": 16,
                  "cell": 32, "layers": 1, "precision": "float32"},
        "training": {"learning_rate": 0.01, "batch_size": 64, "epochs": 1, "patience": None, "seed": 0},
        "metrics": {"every": 10, "analysis_every": 20, "analysis_windows": 2, "sample_windows": 16,
                    "checkpoint_every": 10},
    }  # fmt: skip
    (folder / "bilm.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert main(["bilm", "train", str(folder / "bilm.yaml"), "--runs-dir", str(folder / "runs")]) == 0
    return (folder / "runs" / "tiny" / "latest").resolve()


def test_runs_that_cannot_be_compared_are_one_line_errors(fitted, tmp_path, capsys):
    general = str(fitted["general"])
    incomplete = tmp_path / "incomplete"
    shutil.copytree(fitted["no_x2"], incomplete)
    (incomplete / "results.json").unlink()  # as if the fit had been killed
    bilm = tiny_bilm_run(tmp_path)
    bilm_incomplete = tmp_path / "bilm_incomplete"
    shutil.copytree(bilm, bilm_incomplete)
    (bilm_incomplete / "results.json").unlink()
    capsys.readouterr()
    cases = [
        ([general], ["at least two runs"]),
        ([general, str(incomplete)], [str(incomplete), "incomplete", "--resume"]),
        ([str(bilm), general], [str(bilm), "bilm run", "gradfit fit"]),
        ([general, str(bilm_incomplete)], [str(bilm_incomplete), "bilm run"]),
        ([general, str(tmp_path / "nowhere")], ["nowhere", "no such run folder"]),
        ([general, general], ["the same run", "once"]),
    ]
    for argv, fragments in cases:
        assert main(["compare", *argv]) == 2, argv
        line = one_error_line(capsys.readouterr().err)
        for fragment in fragments:
            assert fragment in line, (argv, line)
    with pytest.raises(RunError):
        compare_runs([general, incomplete])
