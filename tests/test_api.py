"""The public API: names and shapes of what `Model` and `FitResult` return, spec files vs dicts, and fit results of
a plain binary logit against an independent numpy implementation (estimates and all three covariance types).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.special import expit

import gradfit
from conftest import mnl_spec, rich_spec
from gradfit.iclv.simulate import seed_model

ESTIMATE_COLUMNS = [
    "value",
    "std_err",
    "t_stat",
    "p_value",
    "robust_std_err",
    "robust_t_stat",
    "robust_p_value",
    "bhhh_std_err",
]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mnl_model(mnl_frame) -> gradfit.Model:
    return gradfit.Model(mnl_spec(), data=mnl_frame)


@pytest.fixture(scope="module")
def mnl_fit(mnl_model):
    return mnl_model.fit()


# ------------------------------------------------------------------------------------------------------
# Model


def test_public_names():
    for name in (
        "Model",
        "read_spec",
        "ModelSpec",
        "FitResult",
        "GradfitError",
        "SpecError",
        "FormulaError",
        "DataError",
        "EstimationError",
    ):
        assert hasattr(gradfit, name), name
    assert issubclass(gradfit.SpecError, gradfit.GradfitError)
    assert issubclass(gradfit.FormulaError, gradfit.SpecError)
    assert issubclass(gradfit.DataError, gradfit.GradfitError)


def test_parameters_in_spec_order_without_fixed_ones(rich_model):
    spec = rich_spec()
    free = [n for n, p in spec["parameters"].items() if not (isinstance(p, dict) and p.get("fixed"))]
    assert list(rich_model.parameter_names) == free
    assert list(rich_model.start_params) == free
    starts = {n: (p["start"] if isinstance(p, dict) else p) for n, p in spec["parameters"].items()}
    assert rich_model.start_params == {n: float(starts[n]) for n in free}


def test_counts_follow_the_filter(rich_model, rich_frame):
    kept = rich_frame[(rich_frame["task"] <= 4) & (rich_frame["keep"] == 1)]
    assert rich_model.n_observations == len(kept)
    assert rich_model.n_individuals == kept["pid"].nunique()


def test_evaluation_shapes_and_types(rich_model):
    p = rich_model.start_params
    names = list(rich_model.parameter_names)
    ll = rich_model.loglikelihood(p)
    assert isinstance(ll, float) and ll == rich_model.loglikelihood()
    g = rich_model.gradient(p)
    assert list(g) == names and all(isinstance(v, float) for v in g.values())
    h = rich_model.hessian(p)
    assert isinstance(h, pd.DataFrame) and h.shape == (len(names), len(names))
    assert list(h.index) == names and list(h.columns) == names
    s = rich_model.scores(p)
    assert isinstance(s, np.ndarray) and s.shape == (rich_model.n_individuals, len(names))
    lp = rich_model.loglikelihood_per_person(p)
    assert lp.shape == (rich_model.n_individuals,) and np.all(lp < 0)


# ------------------------------------------------------------------------------------------------------
# Fit results


def numpy_logit(df: pd.DataFrame):
    """Independent binary logit: Newton-Raphson, then Hessian, BHHH and cluster-robust (by person) covariances."""
    X = np.column_stack([np.ones(len(df)), df["x"].to_numpy()])
    y = df["choice"].to_numpy()
    beta = np.zeros(2)
    for _ in range(50):
        p = expit(X @ beta)
        H = -(X * (p * (1 - p))[:, None]).T @ X
        beta = beta - np.linalg.solve(H, X.T @ (y - p))
    p = expit(X @ beta)
    ll = float(np.sum(y * np.log(p) + (1 - y) * np.log1p(-p)))
    H = -(X * (p * (1 - p))[:, None]).T @ X
    row_scores = X * (y - p)[:, None]
    person_scores = pd.DataFrame(row_scores).groupby(df["id"].to_numpy()).sum().to_numpy()
    B = person_scores.T @ person_scores
    cov_h = np.linalg.inv(-H)
    return beta, ll, np.sqrt(np.diag(cov_h)), np.sqrt(np.diag(cov_h @ B @ cov_h)), np.sqrt(np.diag(np.linalg.inv(B)))


def test_fit_matches_an_independent_logit(mnl_fit, mnl_frame):
    beta, ll, se, robust, bhhh = numpy_logit(mnl_frame)
    est = mnl_fit.estimates
    assert mnl_fit.converged
    assert mnl_fit.loglikelihood == pytest.approx(ll, abs=1e-6)
    np.testing.assert_allclose(est["value"], beta, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(est["std_err"], se, rtol=1e-4)
    np.testing.assert_allclose(est["robust_std_err"], robust, rtol=1e-4)
    np.testing.assert_allclose(est["bhhh_std_err"], bhhh, rtol=1e-4)
    np.testing.assert_allclose(est["t_stat"], est["value"] / est["std_err"], rtol=1e-12)
    from scipy.stats import norm

    np.testing.assert_allclose(est["p_value"], 2 * norm.sf(np.abs(est["t_stat"])), rtol=1e-10)
    np.testing.assert_allclose(est["robust_p_value"], 2 * norm.sf(np.abs(est["robust_t_stat"])), rtol=1e-10)


def test_choice_only_model_without_latent_variables(mnl_frame):
    model = gradfit.Model(mnl_spec(with_latent=False), data=mnl_frame)
    beta, ll, *_ = numpy_logit(mnl_frame)
    assert model.loglikelihood({"asc": beta[0], "beta_x": beta[1]}) == pytest.approx(ll, rel=1e-12)


def test_fit_result_fields(mnl_fit, mnl_frame):
    est = mnl_fit.estimates
    assert list(est.columns) == ESTIMATE_COLUMNS
    assert list(est.index) == ["asc", "beta_x"]
    assert mnl_fit.params == dict(zip(est.index, est["value"], strict=True))
    k, n, ll = 2, len(mnl_frame), mnl_fit.loglikelihood
    assert mnl_fit.aic == pytest.approx(2 * k - 2 * ll)
    assert mnl_fit.bic == pytest.approx(k * np.log(n) - 2 * ll)
    # no latent variables: the choice part is the whole model; the null model is 50/50
    assert mnl_fit.rho_squared == pytest.approx(1 - ll / (n * np.log(0.5)), rel=1e-10)


def test_summary_names_every_parameter_and_the_loglikelihood(mnl_fit):
    text = mnl_fit.summary()
    assert isinstance(text, str)
    for name in mnl_fit.names:
        assert name in text
    assert f"{mnl_fit.loglikelihood:.4f}" in text
    assert "tiny_mnl" in text


# ------------------------------------------------------------------------------------------------------
# Spec files


def write_rich_files(folder: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(folder / "rich.csv", index=False)
    path = folder / "rich.yaml"
    path.write_text(yaml.safe_dump(rich_spec(), sort_keys=False), encoding="utf-8")
    return path


def test_yaml_spec_equals_the_dict_spec(tmp_path, rich_frame, monkeypatch):
    path = write_rich_files(tmp_path, rich_frame)
    from_file = gradfit.read_spec(path)
    monkeypatch.chdir(tmp_path)  # a dict's relative data.path is relative to the current folder
    from_dict = gradfit.Model(rich_spec()).spec
    assert from_file == from_dict
    assert Path(from_file.data.path) == (tmp_path / "rich.csv").resolve()
    # hand-written YAML with bare numbers means the same as {start: number}
    assert from_file.parameters["g1_age"].start == 0.3 and not from_file.parameters["g1_age"].fixed


def test_model_from_a_yaml_file_reads_its_data_relative_to_the_file(tmp_path, rich_frame, rich_model):
    path = write_rich_files(tmp_path, rich_frame)
    model = gradfit.Model(path)  # any current folder
    assert model.n_observations == rich_model.n_observations
    assert model.loglikelihood() == pytest.approx(rich_model.loglikelihood(), rel=1e-13)


def test_committed_seed_example_matches_the_generator():
    path = REPO / "examples" / "seed_iclv" / "seed_iclv.yaml"
    if not path.exists():
        pytest.skip(f"{path.relative_to(REPO)} is not committed yet (written by `gradfit simulate`)")
    committed = yaml.safe_load(path.read_text(encoding="utf-8"))
    generated = yaml.safe_load(yaml.safe_dump(seed_model().spec, sort_keys=False))
    assert committed == generated


def test_compiled_functions_accept_other_argument_shapes(rich_model):
    """Functions compiled ahead of time for the model's arrays still serve other shapes (through jit)."""
    rich_model.compile(("value_and_grad",))
    theta = rich_model._theta(None)
    arrays = rich_model._arrays
    value, _ = rich_model._vg(theta, arrays)
    # the same draws twice over: a different shape, and the same simulated log-likelihood
    doubled = {
        **arrays,
        "draws": np.concatenate([np.asarray(arrays["draws"])] * 2, axis=1),
        "log_weights": np.asarray(arrays["log_weights"]) - np.log(2.0),
    }
    doubled["log_weights"] = np.concatenate([doubled["log_weights"]] * 2)
    value2, _ = rich_model._vg(theta, doubled)
    assert float(value2) == pytest.approx(float(value), rel=1e-12)


def test_background_compilation_reports_its_error():
    from gradfit.model import _Background

    with pytest.raises(ZeroDivisionError):
        _Background(lambda _: 1 / 0, None).join()
    assert _Background(lambda seconds: seconds, 2.5).join() == 2.5


def test_background_compilation_shortens_the_switch_interval_while_it_runs(mnl_frame):
    """While the background thread compiles (model._Background), the GIL switch interval is short, so that
    the optimiser's thread is not kept waiting; it is put back when the thread ends, and after a fit."""
    import sys
    import threading

    from gradfit.model import _Background

    before = sys.getswitchinterval()
    release = threading.Event()
    background = _Background(lambda arg: release.wait(10) and 1.5, None)
    assert sys.getswitchinterval() <= _Background.SWITCH_INTERVAL < before
    release.set()
    assert background.join() == 1.5
    assert sys.getswitchinterval() == before
    gradfit.Model(mnl_spec(with_latent=False), data=mnl_frame).fit()
    assert sys.getswitchinterval() == before


def test_gpu_compiler_options_are_valid_xla_options_and_apply_to_small_gpu_problems():
    """The option names a real XLA setting with a valid value (XLA checks both when compiling, on any
    platform: a renamed option or value is an error), and is used only for small GPU problems."""
    import jax
    import jax.numpy as jnp

    from gradfit import model as model_module

    opts = model_module.GPU_COMPILER_OPTIONS
    assert float(jax.jit(lambda x: x.sum(), compiler_options=opts)(jnp.arange(3.0))) == 3.0
    with pytest.raises(Exception, match="not a valid enum value"):
        jax.jit(lambda x: x.sum(), compiler_options={**opts, next(iter(opts)): "NO_SUCH_MODE"})(jnp.arange(3.0))
    limit = model_module.CONCURRENT_MAX_ELEMENTS
    assert model_module.compiler_options("gpu", 326 * 100 * 54) is opts  # the seed model
    assert model_module.compiler_options("gpu", limit + 1) is None
    assert model_module.compiler_options("cpu", 326 * 100 * 54) is None


def test_programs_with_the_arrays_bound_as_constants_agree_and_take_theta_alone():
    """_AheadOfTime with bound arrays (what one GPU runs for small models, model.BIND_MAX_BYTES): a call given
    those arrays runs a program whose only argument is theta, with the same value and gradient as the general
    program; any other arrays (here a copy, as value_and_grad_with_draws passes) take the general program."""
    import jax

    from gradfit import model as model_module

    sim = seed_model(n_people=40, n_tasks=3, n_latent=2, per_latent=3, n_draws=20)
    spec = dict(sim.spec)
    spec["estimation"] = {**spec["estimation"], "device": "cpu", "devices": 1}
    model = gradfit.Model(spec, data=sim.data)
    assert not model._bind_arrays()  # CPUs keep the arrays as arguments
    arrays, theta = model._arrays, model._theta(None)
    fn = jax.value_and_grad(model._total)
    bound = model_module._AheadOfTime(fn, None, arrays)
    general = model_module._AheadOfTime(fn, None)
    n_args = [len(jax.tree_util.tree_leaves(f.lower(theta, arrays).args_info)) for f in (bound, general)]
    assert n_args == [1, 1 + len(jax.tree_util.tree_leaves(arrays))]
    v0, g0 = general(theta, arrays)
    for compiled in (False, True):
        if compiled:
            bound.compile(theta, arrays)
            assert bound._bound_executable is not None and bound.executable is None
        v1, g1 = bound(theta, arrays)
        np.testing.assert_allclose(float(v1), float(v0), rtol=1e-13)
        np.testing.assert_allclose(np.asarray(g1), np.asarray(g0), rtol=1e-11, atol=1e-11)
    copy = jax.tree_util.tree_map(lambda x: x + 0, arrays)
    other = jax.tree_util.tree_map(lambda x: x * 0 if x.dtype.kind == "f" and x.ndim == 3 else x, arrays)
    np.testing.assert_allclose(float(bound(theta, copy)[0]), float(v0), rtol=1e-13)
    assert float(bound(theta, other)[0]) != float(v0)  # the arrays it is given, not the bound ones
