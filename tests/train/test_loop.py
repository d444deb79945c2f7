"""The minibatch trainer against known truth: logistic regression's MLE (scipy), early stopping, metrics."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.optimize import minimize

from gradfit.errors import GradfitError
from gradfit.train import TrainSettings, brier, log_loss, roc_auc, train


def logistic_data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    w, b = np.array([1.5, -2.0, 0.5]), -1.0
    y = rng.random(n) < 1 / (1 + np.exp(-(x @ w + b)))
    return x, y.astype(np.float32)


def nll(params, batch, key):
    x, y = batch
    z = x @ params["w"] + params["b"]
    return -(y * jax.nn.log_sigmoid(z) + (1 - y) * jax.nn.log_sigmoid(-z))


def test_minibatch_adam_reaches_the_logistic_mle():
    x, y = logistic_data(20000)
    xv, yv = logistic_data(5000, seed=1)

    def objective(theta):
        z = x @ theta[:3] + theta[3]
        return float(np.mean(np.logaddexp(0, z) - y * z))

    mle = minimize(objective, np.zeros(4), method="BFGS").x  # independent: scipy on the full-data likelihood
    params = {"w": jnp.zeros(3), "b": jnp.zeros(())}
    settings = TrainSettings(epochs=100, batch_size=2000, patience=None, seed=0)
    schedule = optax.exponential_decay(0.05, transition_steps=150, decay_rate=0.5)
    result = train(params, nll, optax.adam(schedule), (x, y), (xv, yv), settings)
    got = np.r_[np.asarray(result.params["w"]), float(result.params["b"])]
    assert got == pytest.approx(mle, abs=0.01)
    # well inside one standard error (about 0.02 here): the best epoch by validation loss is near the MLE
    assert result.stopped == "max epochs" and result.epochs_run == 100
    assert [h["epoch"] for h in result.history] == list(range(1, 101))


def test_early_stopping_keeps_the_best_epoch():
    x, y = logistic_data(2000)
    params = {"w": jnp.zeros(3), "b": jnp.zeros(())}
    seen = []
    # a learning rate of zero never improves on epoch 1: patience 3 stops after epoch 4
    result = train(
        params, nll, optax.sgd(0.0), (x, y), (x, y), TrainSettings(epochs=50, batch_size=100, patience=3),
        on_epoch=seen.append,
    )  # fmt: skip
    assert result.stopped == "early stopping" and result.epochs_run == 4 and result.best_epoch == 1
    assert [r.best for r in seen] == [True, False, False, False]
    assert result.best_val_loss == pytest.approx(np.log(2), rel=1e-6)  # p = 1/2 everywhere


def test_not_finite_loss_stops():
    x, y = logistic_data(1000)
    x[0, 0] = np.nan
    result = train(
        {"w": jnp.zeros(3), "b": jnp.zeros(())}, nll, optax.adam(0.1), (x, y), (x, y), TrainSettings(3, 1000)
    )
    assert result.stopped == "not finite" and result.best_epoch == 0


def test_batch_larger_than_data_is_a_user_error():
    x, y = logistic_data(10)
    with pytest.raises(GradfitError, match="batch size 64"):
        train({"w": jnp.zeros(3), "b": jnp.zeros(())}, nll, optax.adam(0.1), (x, y), (x, y), TrainSettings(1, 64))


def test_auc_matches_pair_counting_with_ties():
    rng = np.random.default_rng(3)
    y = rng.random(300) < 0.3
    p = np.round(rng.random(300), 1)  # many ties
    pairs = [(1.0 if a > b else 0.5 if a == b else 0.0) for a, b in itertools.product(p[y], p[~y])]
    assert roc_auc(y, p) == pytest.approx(np.mean(pairs), abs=1e-12)
    assert np.isnan(roc_auc(np.zeros(5, bool), p[:5]))


def test_brier_and_log_loss_definitions():
    y, p = np.array([1, 0, 1, 0]), np.array([0.9, 0.2, 0.6, 0.5])
    assert brier(y, p) == pytest.approx((0.01 + 0.04 + 0.16 + 0.25) / 4)
    assert log_loss(y, p) == pytest.approx(-(np.log(0.9) + np.log(0.8) + np.log(0.6) + np.log(0.5)) / 4)
