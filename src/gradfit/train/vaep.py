"""The VAEP workload driven by the minibatch trainer: the two-headed MLP fitted on a game split."""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
import optax

from gradfit.train.loop import EpochReport, TrainResult, TrainSettings, train
from gradfit.vaep import model as mlp
from gradfit.vaep.pipeline import Prepared, VaepModel, positive_weights


def train_vaep(
    prepared: Prepared,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    hidden: tuple[int, ...],
    precision: str,
    learning_rate: float,
    settings: TrainSettings,
    pos_weight: float | str = 1.0,
    previous_actions: int = 3,
    on_epoch: Callable[[EpochReport, VaepModel], None] | None = None,
) -> tuple[VaepModel, TrainResult]:
    """Fit the two-headed MLP on the training rows, early-stopped on the validation rows."""
    compute = mlp.COMPUTE[precision]
    x_train, y_train = prepared.x[train_rows], prepared.y[train_rows]
    y_host = np.asarray(y_train)
    scaler = mlp.fit_scaler(x_train)
    data_dtype = compute  # bf16 training data halve the memory traffic of every epoch
    train_data = (mlp.standardize(scaler, x_train, data_dtype), y_train)
    val_data = (mlp.standardize(scaler, prepared.x[val_rows], data_dtype), prepared.y[val_rows])
    weights = positive_weights(pos_weight, y_host)
    rates = y_host.mean(axis=0)
    params = mlp.init_params(jax.random.key(settings.seed), prepared.x.shape[1], tuple(hidden), rates, weights)

    def wrap(report: EpochReport) -> None:
        if on_epoch is not None:
            on_epoch(report, VaepModel(report.params, scaler, weights, precision, previous_actions))

    result = train(
        params,
        mlp.loss_fn(compute, tuple(map(float, weights))),
        optax.adam(learning_rate),
        train_data,
        val_data,
        settings,
        on_epoch=wrap,
        # early stopping scores what the model will predict: corrected, unweighted probabilities
        eval_loss_fn=mlp.loss_fn(compute, tuple(map(float, weights)), corrected=True),
    )
    return VaepModel(result.params, scaler, weights, precision, previous_actions), result
