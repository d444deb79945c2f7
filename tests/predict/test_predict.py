"""`gradfit predict`: probabilities, shares, derived quantities and elasticities with delta-method and
Krinsky-Robb intervals, checked against closed forms, finite differences and the data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from gradfit.cli.main import main
from gradfit.predict import Settings, load_fitted, make_scenario, predict, quantity_expressions

ALTS = ("a", "b", "c")


def simulate(n_people: int = 300, n_tasks: int = 3, seed: int = 5) -> pd.DataFrame:
    """Three alternatives with a price x_<alt> each; a latent attitude (from a person covariate, seen through
    three 5-level ordered indicators) raises the utility of c."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n_people).round(3)
    eta = 0.8 * z + rng.normal(size=n_people)
    cuts = np.array([-1.5, -0.5, 0.5, 1.5])
    answers = {f"I{k}": 1 + ((1.0 * eta)[:, None] + rng.logistic(size=(n_people, 1)) > cuts).sum(1) for k in (1, 2, 3)}
    n = n_people * n_tasks
    person = np.repeat(np.arange(n_people), n_tasks)
    x = rng.uniform(0.5, 3.0, size=(n, 3)).round(3)
    v = np.array([0.0, 0.4, -0.3]) - 1.2 * x + np.outer(eta[person], [0, 0, 0.9])
    u = v + rng.gumbel(size=v.shape)
    frame = pd.DataFrame({"id": person + 1, "z": z[person], "choice": u.argmax(1) + 1})
    for j, alt in enumerate(ALTS):
        frame[f"x_{alt}"] = x[:, j]
    for name, values in answers.items():
        frame[name] = values[person]
    return frame


def spec(latent: bool) -> dict:
    utility = {"a": "b_x * x_a", "b": "asc_b + b_x * x_b", "c": "asc_c + b_x * x_c"}
    out = {
        "name": "iclv3" if latent else "mnl3",
        "data": {"path": "data.csv", "person": "id"},
        "parameters": {"asc_b": 0.0, "asc_c": 0.0, "b_x": 0.0},
        "choice": {
            "column": "choice",
            "alternatives": {alt: {"code": j + 1, "utility": utility[alt]} for j, alt in enumerate(ALTS)},
        },
        "estimation": {"tolerance": 1e-10},
    }
    if not latent:  # an unused latent variable on one node: exactly the plain logit
        out["latent_variables"] = {"unused": {"mean": "0"}}
        out["integration"] = {"type": "gauss_hermite", "n": 1}
        return out
    out["parameters"] |= {"g_z": 0.5, "lam_c": 0.0, "load2": 1.0, "load3": 1.0, "t1": -1.0, "t2": 0.5, "t3": 0.5}
    out["parameters"] |= {"t4": 0.5}
    out["latent_variables"] = {"att": {"mean": "g_z * z"}}
    out["thresholds"] = {"likert": {"form": "increments", "parameters": ["t1", "t2", "t3", "t4"]}}
    out["indicators"] = {
        f"I{k}": {
            "type": "ordered_logit",
            "person_level": True,
            "thresholds": "likert",
            "loadings": {"att": 1.0 if k == 1 else f"load{k}"},
        }
        for k in (1, 2, 3)
    }
    out["choice"]["alternatives"]["c"]["utility"] += " + lam_c * att"
    out["integration"] = {"type": "gauss_hermite", "n": 12}
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("predict")
    simulate().to_csv(folder / "data.csv", index=False)
    out = {}
    for latent in (False, True):
        s = spec(latent)
        path = folder / f"{s['name']}.yaml"
        path.write_text(yaml.safe_dump(s, sort_keys=False), encoding="utf-8")
        assert main(["fit", str(path), "--runs-dir", str(folder / "runs"), "--json"]) == 0
        out[s["name"]] = folder / "runs" / s["name"] / "latest"
    return out


@pytest.fixture(scope="module")
def mnl(runs):
    return load_fitted(runs["mnl3"])


@pytest.fixture(scope="module")
def iclv(runs):
    return load_fitted(runs["iclv3"])


def logit_probabilities(fitted) -> np.ndarray:
    """Plain multinomial logit probabilities of the data rows, by hand with numpy."""
    frame = pd.read_csv(fitted.spec.data.path)
    p = fitted.params
    v = np.stack([p["b_x"] * frame.x_a, p["asc_b"] + p["b_x"] * frame.x_b, p["asc_c"] + p["b_x"] * frame.x_c], 1)
    e = np.exp(v - v.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True), frame


def test_probabilities_are_the_logit_by_hand(mnl):
    rows = mnl.model.choice_probabilities(mnl.params)
    expected, frame = logit_probabilities(mnl)
    np.testing.assert_allclose(rows[[f"P_{a}" for a in ALTS]].to_numpy(), expected, rtol=1e-12, atol=1e-14)
    assert (rows["chosen"].to_numpy() == np.asarray(ALTS)[frame.choice - 1]).all()


def test_shares_reproduce_the_observed_at_the_maximum(mnl, iclv):
    # With a constant per alternative, a logit's first-order conditions make predicted shares equal observed
    # ones exactly at the maximum; the hybrid model predicts (unconditionally) within sampling error.
    out = predict(mnl, make_scenario(mnl.spec), settings=Settings(draws=0))
    np.testing.assert_allclose(out.shares["predicted"], out.shares["observed"], atol=1e-7)
    out = predict(iclv, make_scenario(iclv.spec), settings=Settings(draws=0))
    n = len(out.rows)
    sampling = np.sqrt(out.shares["observed"] * (1 - out.shares["observed"]) / n)
    assert (np.abs(out.shares["predicted"] - out.shares["observed"]) < 3 * sampling).all(), out.shares


def test_elasticities_match_the_logit_closed_form(mnl):
    out = predict(mnl, make_scenario(mnl.spec), elasticities=("x_b",), settings=Settings(draws=0))
    p, frame = logit_probabilities(mnl)
    beta = mnl.params["b_x"]
    x = frame.x_b.to_numpy()
    # aggregate elasticity of P_i to x_b: sum_n x_n dP_ni/dx_n / sum_n P_ni, dP_ni/dx_nb = beta P_ni (1[i=b] - P_nb)
    expected = [(x * beta * p[:, i] * ((i == 1) - p[:, 1])).sum() / p[:, i].sum() for i in range(3)]
    table = out.quantities.set_index("quantity")
    got = [table.loc[f"elasticity {a} / x_b", "estimate"] for a in ALTS]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert list(table["kind"]) == ["cross", "direct", "cross"]
    # each row's own elasticity: beta x_nb (1[i=b] - P_nb)
    for i, a in enumerate(ALTS):
        np.testing.assert_allclose(out.rows[f"E_{a}_x_b"], beta * x * ((i == 1) - p[:, 1]), rtol=1e-6, atol=1e-9)


def _fd_jacobian(fn, theta: np.ndarray, h: float = 1e-5) -> np.ndarray:
    cols = []
    for k in range(len(theta)):
        step = np.zeros_like(theta)
        step[k] = h * max(1.0, abs(theta[k]))
        cols.append((np.asarray(fn(theta + step)) - np.asarray(fn(theta - step))) / (2 * step[k]))
    return np.stack(cols, axis=-1)


def test_delta_method_matches_a_finite_difference_jacobian(iclv):
    exprs = quantity_expressions(iclv.spec, ["ratio=asc_c / b_x", "per_row=lam_c * z + asc_c"])
    out = predict(iclv, make_scenario(iclv.spec), exprs, elasticities=("x_c",), settings=Settings(draws=0))
    cov = iclv.cov.to_numpy()
    model, theta = iclv.model, iclv.theta

    def se(jac):
        return np.sqrt(np.einsum("ip,pq,iq->i", jac, cov, jac))

    jac = _fd_jacobian(lambda t: np.asarray(model.row_probabilities(t)).mean(0), theta)
    np.testing.assert_allclose(out.shares["se"], se(jac), rtol=1e-5)
    names = list(model.parameter_names)
    i, j = names.index("asc_c"), names.index("b_x")
    jac = _fd_jacobian(lambda t: np.array([t[i] / t[j]]), theta)
    table = out.quantities.set_index(["quantity", "kind"])
    assert table.loc[("ratio", "value"), "se"] == pytest.approx(se(jac)[0], rel=1e-6)
    # per row: lam_c * z + asc_c; at the means of the data it is the same linear function at mean(z)
    z = pd.read_csv(iclv.spec.data.path)["z"].to_numpy()
    k = names.index("lam_c")
    np.testing.assert_allclose(out.rows["per_row"], iclv.params["lam_c"] * z + iclv.params["asc_c"], rtol=1e-12)
    var = z**2 * cov[k, k] + cov[i, i] + 2 * z * cov[k, i]
    np.testing.assert_allclose(out.rows["per_row_se"], np.sqrt(var), rtol=1e-9)
    mean = iclv.params["lam_c"] * z.mean() + iclv.params["asc_c"]
    assert table.loc[("per_row", "at_means"), "estimate"] == pytest.approx(mean, rel=1e-12)
    assert table.loc[("per_row", "mean"), "estimate"] == pytest.approx(mean, rel=1e-12)  # linear in data
    # the elasticity's standard error against differences of the elasticity itself (exact gradient inside)
    e_fd = out.quantities.set_index("quantity").loc["elasticity c / x_c", "se"]
    assert np.isfinite(e_fd) and e_fd > 0


def test_krinsky_robb_intervals_cover_the_delta_method_for_linear_quantities(iclv):
    exprs = quantity_expressions(iclv.spec, ["linear=2 * b_x - asc_b", "ratio=asc_c / b_x"])
    out = predict(iclv, make_scenario(iclv.spec), exprs, settings=Settings(draws=4000, seed=3))
    table = out.quantities.set_index("quantity")
    # a linear function of normal draws is normal: the percentile interval is the delta one up to Monte
    # Carlo error (~2.5% of the width at 4,000 draws for the 2.5% and 97.5% quantiles)
    lin = table.loc["linear"]
    width = lin["delta_hi"] - lin["delta_lo"]
    assert abs(lin["kr_lo"] - lin["delta_lo"]) < 0.03 * width and abs(lin["kr_hi"] - lin["delta_hi"]) < 0.03 * width
    shares = out.shares  # nearly linear in theta at this precision
    width = shares["delta_hi"] - shares["delta_lo"]
    assert ((shares["kr_lo"] - shares["delta_lo"]).abs() < 0.05 * width).all(), shares
    assert ((shares["kr_hi"] - shares["delta_hi"]).abs() < 0.05 * width).all(), shares
    rows = out.rows
    for a in ALTS:  # per-row intervals hold their point predictions
        assert (rows[f"P_{a}_lo"] <= rows[f"P_{a}"] + 1e-12).all()
        assert (rows[f"P_{a}"] <= rows[f"P_{a}_hi"] + 1e-12).all()


def test_krinsky_robb_draws_in_batches_equal_one_at_a_time(iclv):
    # the GPU path evaluates draws in vectorised batches (the last one padded); the draws are the same
    exprs = quantity_expressions(iclv.spec, ["ratio=asc_c / b_x"])
    one = predict(iclv, make_scenario(iclv.spec), exprs, settings=Settings(draws=7, seed=1, batch=1))
    batched = predict(iclv, make_scenario(iclv.spec), exprs, settings=Settings(draws=7, seed=1, batch=3))
    for a, b in ((one.shares, batched.shares), (one.quantities, batched.quantities)):
        np.testing.assert_allclose(a.select_dtypes("number"), b.select_dtypes("number"), rtol=1e-10)
    np.testing.assert_allclose(one.rows["P_c_hi"], batched.rows["P_c_hi"], rtol=1e-10)


def test_indicator_distribution_fits_the_answers(iclv):
    dist = iclv.model.indicator_distribution(iclv.params)
    assert set(dist["indicator"]) == {"I1", "I2", "I3"} and list(dist["level"][:5]) == [1.0, 2.0, 3.0, 4.0, 5.0]
    sums = dist.groupby("indicator")[["observed", "predicted"]].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-12)
    # 300 answers per indicator: a share's sampling sd is at most 0.029
    assert (dist["observed"] - dist["predicted"]).abs().max() < 0.08


def test_cli_writes_a_complete_prediction_folder_and_scenarios_change_the_data(runs, iclv, capsys, tmp_path):
    argv = ["predict", str(runs["iclv3"]), "--set", "x_c=x_c*1.5", "-q", "v=asc_c/b_x", "-e", "x_a", "--draws", "20"]
    assert main([*argv, "--name", "dearer_c"]) == 0
    folder = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert folder == runs["iclv3"].resolve() / "predictions" / "dearer_c"
    assert {p.name for p in folder.iterdir()} == {"rows.csv", "shares.csv", "quantities.csv", "prediction.json"}
    rows = pd.read_csv(folder / "rows.csv")
    meta = json.loads((folder / "prediction.json").read_text())
    assert meta["changes"] == ["x_c=x_c*1.5"] and meta["draws"] == 20
    # the scenario is the model on the changed data
    frame = pd.read_csv(iclv.spec.data.path)
    frame["x_c"] = frame["x_c"] * 1.5
    expected = np.asarray(iclv.model.row_probabilities(iclv.theta, iclv.model.data_arrays(frame)))
    np.testing.assert_allclose(rows[[f"P_{a}" for a in ALTS]].to_numpy(), expected, rtol=1e-8)
    shares = pd.read_csv(folder / "shares.csv")
    base = predict(iclv, make_scenario(iclv.spec), settings=Settings(draws=0)).shares
    assert shares.loc[2, "predicted"] < base.loc[2, "predicted"] - 0.02  # c dearer: fewer choose it

    # new data without choices or indicators: predictions only, observed shares unknown
    new = pd.read_csv(iclv.spec.data.path).drop(columns=["choice", "I1", "I2", "I3"]).head(30)
    new.to_csv(tmp_path / "new.csv", index=False)
    assert main(["predict", str(runs["iclv3"]), "--data", str(tmp_path / "new.csv"), "--draws", "0"]) == 0
    folder = Path(capsys.readouterr().out.strip().splitlines()[-1])
    rows = pd.read_csv(folder / "rows.csv")
    assert len(rows) == 30 and "chosen" not in rows and pd.read_csv(folder / "shares.csv")["observed"].isna().all()
    base_rows = iclv.model.choice_probabilities(iclv.params).head(30)
    np.testing.assert_allclose(rows[[f"P_{a}" for a in ALTS]], base_rows[[f"P_{a}" for a in ALTS]], rtol=1e-8)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "x_d=1"], "no column 'x_d'"),
        (["--set", "x_c"], "expected COLUMN=FORMULA"),
        (["-q", "v=asc_c/bx"], "unknown name 'bx'"),
        (["-q", "v=lam_c*att"], "is a latent variable"),
        (["-e", "nope"], "no column 'nope'"),
        (["--data", "missing.csv"], "--data missing.csv: no such file"),
        (["--name", "../x"], "--name '../x'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(runs, capsys, args, message):
    assert main(["predict", str(runs["iclv3"]), "--draws", "0", *args]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]  # after any progress lines
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in err, err


def test_an_incomplete_run_is_refused(runs, tmp_path, capsys):
    incomplete = tmp_path / "run"
    incomplete.mkdir()
    (incomplete / "config.yaml").write_text((runs["iclv3"] / "config.yaml").read_text())
    assert main(["predict", str(incomplete)]) == 2
    assert "not complete" in capsys.readouterr().err
