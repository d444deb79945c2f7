"""The VAEP classifier (gradfit.vaep.model / pipeline / gradfit.train.vaep) against independent truth.

Truths:

* Saving: a model that went through `to_bytes` / `from_bytes` predicts bit for bit what it predicted before.
* Positive weights: data drawn from a known logistic model (two informative features, base rates about 5 % and
  3 %). A model with no hidden layer is a logistic regression, so it can represent the truth exactly; fitted
  with a positive weight w, the population optimum of the weighted likelihood has odds w times the true odds
  (w p (1 - q) = (1 - p) q at the optimum q), so predictions that subtract log w estimate the true
  probabilities again, whatever w. The tolerances come from the sampling error of a base rate (below).
* bf16: the documented mixed-precision recipe (inputs, weights and layer outputs rounded to bfloat16, the
  logits float32) emulated in numpy with ml_dtypes' bfloat16 rounding, independently of JAX.
* `split_games`: counts worked out by hand from the documented rule (a fraction < 1 of the games, at least one;
  a count >= 1).
"""

from __future__ import annotations

import io
import json
import struct
import zipfile

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from gradfit.errors import DataError
from gradfit.train import TrainSettings
from gradfit.train.vaep import train_vaep
from gradfit.vaep import model as mlp
from gradfit.vaep import pipeline

# ------------------------------------------------------------------------------------------------------
# Synthetic data with a known logistic truth

N_GAMES, PER_GAME = 40, 1000  # 30 training games (30,000 rows), 10 validation games
TRAIN_GAMES, VAL_GAMES = np.arange(30), np.arange(30, 40)


def logistic_truth(seed: int = 0):
    """Features (3 columns, the third pure noise), the true probabilities (n, 2) and labels drawn from them."""
    rng = np.random.default_rng(seed)
    n = N_GAMES * PER_GAME
    x = rng.normal(size=(n, 3)).astype(np.float32)
    z = np.stack([-3.4 + 1.0 * x[:, 0] - 0.5 * x[:, 1], -3.8 + 0.8 * x[:, 1]], axis=1)
    p = 1.0 / (1.0 + np.exp(-z))
    y = rng.random(p.shape) < p
    return x, p, y


@pytest.fixture(scope="module")
def synthetic():
    x, p, y = logistic_truth()
    game = np.repeat(np.arange(N_GAMES), PER_GAME)
    # train_vaep only reads x, y and (through `rows`) game: no SPADL actions needed
    prepared = pipeline.Prepared(None, jnp.asarray(x), jnp.asarray(y), game, np.arange(N_GAMES))
    return prepared, p, y, pipeline.rows(prepared, TRAIN_GAMES), pipeline.rows(prepared, VAL_GAMES)


def _fit(synthetic, pos_weight, patience=None, epochs=20):
    """train_vaep on the synthetic data (float32, no hidden layer); returns (best model, last epoch's model, result)."""
    prepared, _, _, train_rows, val_rows = synthetic
    last = []
    model, result = train_vaep(
        prepared, train_rows, val_rows, hidden=(), precision="float32", learning_rate=0.01,
        settings=TrainSettings(epochs=epochs, batch_size=512, patience=patience, seed=0), pos_weight=pos_weight,
        on_epoch=lambda report, m: last.append(m),
    )  # fmt: skip
    return model, last[-1], result


def _tolerance(rate: float, n: int) -> float:
    """Three standard errors of a base rate estimated from n rows: how far a calibrated model's mean prediction
    may be from the observed base rate (the truth's mean differs from it by sampling error of this size)."""
    return 3.0 * np.sqrt(rate * (1 - rate) / n)


@pytest.fixture(scope="module")
def fitted(synthetic):
    """The last epoch's model for pos_weight 1, 10 and 'balanced' (20 epochs: converged, see the tests)."""
    return {w: _fit(synthetic, w)[1] for w in (1.0, 10.0, "balanced")}


def test_positive_weights_are_undone_at_prediction(synthetic, fitted):
    prepared, truth, y, train_rows, _ = synthetic
    rate = y[train_rows].mean(axis=0)  # about 5.3 % and 3.1 %
    tol = np.array([_tolerance(r, len(train_rows)) for r in rate])  # about 0.0039 and 0.0030
    x = prepared.x[train_rows]
    preds = {w: np.asarray(pipeline.predict(m, x)) for w, m in fitted.items()}
    assert fitted[10.0].pos_weight.tolist() == [10.0, 10.0]
    # 'balanced': negatives / positives of each head, on the training rows
    balanced = (len(train_rows) - y[train_rows].sum(axis=0)) / y[train_rows].sum(axis=0)
    assert fitted["balanced"].pos_weight == pytest.approx(balanced, rel=1e-6)
    for w, p in preds.items():
        assert np.abs(p.mean(axis=0) - rate).max() < tol.max(), w  # calibrated in the large
        # and close to the known truth row by row: mean absolute error well below the base rates
        assert np.abs(p - truth[train_rows]).mean(axis=0).max() < 0.005, w
    # the weighted and unweighted models agree (they estimate the same probabilities)
    assert np.abs(preds[10.0] - preds[1.0]).mean() < 0.005
    assert np.abs(preds["balanced"] - preds[1.0]).mean() < 0.005

    # without the correction the weighted model's probabilities are far from calibrated: its odds are w times
    # the true odds, i.e. q = w p / (1 - p + w p), about 0.29 and 0.21 on average here instead of 0.05, 0.03
    raw = np.asarray(pipeline.predict(fitted[10.0]._replace(pos_weight=np.ones(2, np.float32)), x))
    p_true = truth[train_rows]
    expected_raw = (10 * p_true / (1 - p_true + 10 * p_true)).mean(axis=0)
    assert raw.mean(axis=0) == pytest.approx(expected_raw, abs=0.02)
    assert (raw.mean(axis=0) > 3 * rate).all()


def test_weighted_training_keeps_a_calibrated_epoch(synthetic):
    """The model train_vaep returns (the best epoch by validation loss) is calibrated with pos_weight 10 too."""
    _, _, y, train_rows, val_rows = synthetic
    model, _, result = _fit(synthetic, 10.0, patience=5, epochs=20)
    prepared = synthetic[0]
    rate = y[train_rows].mean(axis=0)
    tol = max(_tolerance(r, len(train_rows)) for r in rate)
    p = np.asarray(pipeline.predict(model, prepared.x[train_rows]))
    assert np.abs(p.mean(axis=0) - rate).max() < tol
    # the validation loss it reports is the plain log-loss of its corrected predictions on the validation rows
    pv = np.clip(np.asarray(pipeline.predict(model, prepared.x[val_rows])), 1e-7, 1 - 1e-7)
    yv = y[val_rows]
    plain = -(yv * np.log(pv) + (1 - yv) * np.log1p(-pv)).sum(axis=1).mean()
    assert result.best_val_loss == pytest.approx(plain, rel=1e-3)


# ------------------------------------------------------------------------------------------------------
# bf16 against float32, and against an emulation of the recipe


def _params_and_data(n_in=12, hidden=(16, 8), seed=1):
    rng = np.random.default_rng(seed)
    params = mlp.init_params(jax.random.key(3), n_in, hidden, np.array([0.05, 0.03]))
    params["out"]["w"] = params["out"]["w"] * 10  # init scales the output layer by 0.1: make the logits vary
    # features far from zero (like pitch coordinates or clock times): bfloat16 must see them standardised, since
    # near 1000 its spacing is 4
    x = (rng.normal(size=(5000, n_in)) * 3 + 1000).astype(np.float32)
    return params, mlp.fit_scaler(jnp.asarray(x)), x


def _emulated_bf16_logits(params, scaler, x) -> np.ndarray:
    """The documented recipe in numpy: standardise in float32, round inputs, weights and every layer's output to
    bfloat16 (products summed exactly), the output layer's product rounded to bfloat16 and its bias added in
    float32."""

    def r(a):
        return np.asarray(a, np.float32).astype(ml_dtypes.bfloat16).astype(np.float64)

    z = (x - np.asarray(scaler.mean, np.float32)) / np.asarray(scaler.scale, np.float32)
    h = r(z)
    for layer in params["hidden"]:
        h = np.maximum(r(r(h @ r(layer["w"])) + r(layer["b"])), 0.0)
    return r(h @ r(params["out"]["w"])) + np.asarray(params["out"]["b"], np.float64)


def test_bf16_and_float32_predictions_agree_within_bf16_precision():
    params, scaler, x = _params_and_data()
    f32 = pipeline.VaepModel(params, scaler, np.array([1.0, 4.0], np.float32), "float32", 3)
    bf16 = f32._replace(precision="bf16")
    xs = jnp.asarray(x)

    z32 = np.asarray(mlp.logits(params, mlp.standardize(scaler, xs, jnp.float32), jnp.float32))
    z16 = np.asarray(mlp.logits(params, mlp.standardize(scaler, xs, jnp.bfloat16), jnp.bfloat16))
    assert np.abs(z32).mean() > 1.0  # logits of a few units, so the comparison below is not trivially small
    # bf16 keeps 8 significant bits (unit roundoff u = 2^-8); a logit passes through three layers with about three
    # roundings each, so a first-order relative error of at most ~9u ~ 2^-5 of the logit's size is the budget
    budget = 2.0**-5 * (1.0 + np.abs(z32))
    assert (np.abs(z16 - z32) <= budget).all()
    assert np.abs(z16 - z32).max() > 1e-4  # and bf16 really was used: not float32 under another name

    # the bf16 deviation is the recipe's rounding, not something else: an independent emulation of the recipe
    # reproduces JAX's bf16 logits to float32 rounding for nearly every row (a sum accumulated in another order
    # can land on the other side of a bfloat16 rounding boundary now and then: hence 99 %, and the mean)
    emulated = _emulated_bf16_logits(params, scaler, x)
    assert np.mean(np.abs(z16 - emulated) <= 1e-5) >= 0.99
    assert np.abs(z16 - emulated).mean() <= 0.05 * np.abs(z32 - emulated).mean()

    # probabilities (sigmoid is 1/4-Lipschitz; the positive-weight shift is exact in float32)
    p32 = np.asarray(pipeline.predict(f32, xs))
    p16 = np.asarray(pipeline.predict(bf16, xs))
    assert (np.abs(p16 - p32) <= 0.25 * budget).all()
    shift = np.log(np.array([1.0, 4.0]))
    assert p32 == pytest.approx(1 / (1 + np.exp(-(z32 - shift))), abs=1e-6)


# ------------------------------------------------------------------------------------------------------
# Saving and loading


def _model(hidden=(16, 8), precision="bf16"):
    params, scaler, x = _params_and_data(hidden=hidden)
    return pipeline.VaepModel(params, scaler, np.array([2.0, 3.5], np.float32), precision, 2), x


@pytest.mark.parametrize("hidden,precision", [((16, 8), "bf16"), ((), "float32"), ((5,), "float32")])
def test_to_bytes_round_trip_predicts_identically(hidden, precision):
    model, x = _model(hidden, precision)
    back = pipeline.from_bytes(pipeline.to_bytes(model))
    assert back.precision == precision and back.previous_actions == 2
    assert back.pos_weight.tolist() == [2.0, 3.5]
    assert [layer["w"].shape for layer in back.params["hidden"]] == [
        layer["w"].shape for layer in model.params["hidden"]
    ]
    before = np.asarray(pipeline.predict(model, jnp.asarray(x)))
    after = np.asarray(pipeline.predict(back, jnp.asarray(x)))
    assert np.array_equal(before, after)
    # every weight in its place (a swapped leaf with a matching shape would not show in the shapes above)
    for a, b in zip(jax.tree_util.tree_leaves(model.params), jax.tree_util.tree_leaves(back.params), strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def _no_meta(blob: bytes) -> bytes:
    with np.load(io.BytesIO(blob)) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "meta"}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _bad_meta(blob: bytes) -> bytes:
    with np.load(io.BytesIO(blob)) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["meta"] = np.frombuffer(b"{not json", np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _flip_byte(blob: bytes) -> bytes:
    """One byte in the middle of the largest stored array changed: the zip's CRC check fails on reading it."""
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        info = max(zf.infolist(), key=lambda i: i.file_size)
    assert info.compress_type == zipfile.ZIP_STORED and info.file_size > 256
    name_len, extra_len = struct.unpack("<HH", blob[info.header_offset + 26 : info.header_offset + 30])
    at = info.header_offset + 30 + name_len + extra_len + 128 + (info.file_size - 128) // 2  # past the npy header
    return blob[:at] + bytes([blob[at] ^ 0xFF]) + blob[at + 1 :]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b"hello, not an npz", id="text"),
        pytest.param(_no_meta, id="no-meta"),
        pytest.param(_bad_meta, id="meta-not-json"),
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(_flip_byte, id="corrupted"),
        pytest.param(lambda b: b"", id="empty"),
    ],
)
def test_damaged_model_file_is_a_data_error(damage):
    model, _ = _model()
    blob = pipeline.to_bytes(model)
    assert json.loads(bytes(np.load(io.BytesIO(blob))["meta"]).decode())["leaves"] == 6  # 2 hidden + out, w and b
    with pytest.raises(DataError, match=r"best\.npz: not a gradfit VAEP model"):
        pipeline.from_bytes(damage(blob), "runs/m/best.npz")


# ------------------------------------------------------------------------------------------------------
# Game split


def _check_partition(split, n_games):
    parts = [split["train"], split["validation"], split["test"]]
    together = np.concatenate(parts)
    assert sorted(together.tolist()) == list(range(n_games))  # covers every game exactly once: disjoint too


@pytest.mark.parametrize(
    "n_games,validation,test,expected",
    [
        (20, 0.15, 0.15, (3, 3, 14)),  # round(3.0)
        (10, 0.25, 0.1, (2, 1, 7)),  # round(2.5) = 2 (half to even), round(1.0)
        (3, 0.15, 0.0, (1, 0, 2)),  # round(0.45) = 0, but a positive fraction gives at least one game
        (3, 1, 0, (1, 0, 2)),  # counts
        (10, 3, 2, (3, 2, 5)),
        (10, 3.0, 0.5, (3, 5, 2)),  # a count and a fraction together
        (2, 1, 0, (1, 0, 1)),
    ],
)
def test_split_games_counts_and_partition(n_games, validation, test, expected):
    split = pipeline.split_games(n_games, validation, test, seed=7)
    assert (len(split["validation"]), len(split["test"]), len(split["train"])) == expected
    _check_partition(split, n_games)


def test_split_games_is_a_seeded_shuffle():
    a = pipeline.split_games(50, 0.2, 0.2, seed=1)
    b = pipeline.split_games(50, 0.2, 0.2, seed=1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    others = [pipeline.split_games(50, 0.2, 0.2, seed=s)["validation"] for s in range(2, 6)]
    assert any(set(o.tolist()) != set(a["validation"].tolist()) for o in others)  # not a fixed choice
    # not simply the first games in order
    assert sorted(a["validation"].tolist()) != list(range(10))


@pytest.mark.parametrize(
    "n_games,validation,test",
    [(3, 2, 1), (2, 0.5, 0.5), (3, 0.999, 0), (1, 0.15, 0), (5, 3, 2)],
)
def test_split_games_without_a_training_game_is_a_data_error(n_games, validation, test):
    with pytest.raises(DataError, match="leave one to train on"):
        pipeline.split_games(n_games, validation, test, seed=0)
