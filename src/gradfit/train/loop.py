"""The epoch step (device) and the training driver (host): see the package docstring."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradfit.errors import GradfitError

# loss_fn(params, batch, key) -> per-example losses, shape (batch,); batch is a pytree of arrays whose
# leading axis is the example axis
LossFn = Callable[[Any, Any, jax.Array], jnp.ndarray]


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    batch_size: int
    patience: int | None = 5  # epochs without a better validation loss before stopping; None: never
    min_delta: float = 0.0  # an improvement smaller than this does not count
    seed: int = 0


class EpochReport(NamedTuple):
    epoch: int  # 1-based
    train_loss: float
    val_loss: float
    best: bool  # this epoch has the best validation loss so far
    seconds: float
    examples: int  # training examples seen this epoch
    params: Any  # this epoch's parameters (device arrays)


class TrainResult(NamedTuple):
    params: Any  # the best epoch's parameters
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    stopped: str  # "early stopping", "max epochs", "not finite"
    history: list[dict]


def _rows(n: int, batch_size: int, key: jax.Array) -> jnp.ndarray:
    """Each batch's row indices for one shuffled pass; the last partial batch is left for the next epochs."""
    steps = n // batch_size
    return jax.random.permutation(key, n)[: steps * batch_size].reshape(steps, batch_size)


def epoch_step(loss_fn: LossFn, optimizer: optax.GradientTransformation, batch_size: int):
    """A jitted (params, opt_state, data, key) -> (params, opt_state, mean training loss) for one epoch."""

    def batch_loss(params, batch, key):
        return jnp.mean(loss_fn(params, batch, key))

    grad = jax.value_and_grad(batch_loss)

    @jax.jit
    def run(params, opt_state, data, key):
        n = jax.tree_util.tree_leaves(data)[0].shape[0]
        shuffle, dropout = jax.random.split(key)
        rows = _rows(n, batch_size, shuffle)

        def one(carry, step):
            params, opt_state = carry
            index, k = step
            batch = jax.tree_util.tree_map(lambda x: x[index], data)
            loss, grads = grad(params, batch, k)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        keys = jax.random.split(dropout, rows.shape[0])
        (params, opt_state), losses = jax.lax.scan(one, (params, opt_state), (rows, keys))
        return params, opt_state, jnp.mean(losses)

    return run


def evaluate(loss_fn: LossFn, batch_size: int):
    """A jitted (params, data) -> mean per-example loss over all of `data` (batched, the last one padded)."""

    @jax.jit
    def run(params, data):
        n = jax.tree_util.tree_leaves(data)[0].shape[0]
        steps = -(-n // batch_size)
        index = jnp.minimum(jnp.arange(steps * batch_size), n - 1).reshape(steps, batch_size)
        weight = (jnp.arange(steps * batch_size) < n).reshape(steps, batch_size)
        key = jax.random.key(0)  # evaluation is deterministic: the loss must ignore the key (no dropout)

        def one(total, step):
            rows, w = step
            batch = jax.tree_util.tree_map(lambda x: x[rows], data)
            return total + jnp.sum(jnp.where(w, loss_fn(params, batch, key), 0.0)).astype(total.dtype), None

        total, _ = jax.lax.scan(one, jnp.zeros((), jnp.float32), (index, weight))
        return total / n

    return run


def train(
    params: Any,
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    train_data: Any,
    val_data: Any,
    settings: TrainSettings,
    on_epoch: Callable[[EpochReport], None] | None = None,
    eval_loss_fn: LossFn | None = None,
) -> TrainResult:
    """Train with early stopping on the validation loss; returns the best epoch's parameters.

    `loss_fn` is what is minimised (it may weight classes or use dropout); `eval_loss_fn` (default the same)
    is what decides the best epoch and early stopping: give the plain, unweighted loss there.
    """
    n = jax.tree_util.tree_leaves(train_data)[0].shape[0]
    if n < settings.batch_size:
        raise GradfitError(
            f"batch size {settings.batch_size}: only {n} training examples; choose a batch size of at most {n}"
        )
    step = epoch_step(loss_fn, optimizer, settings.batch_size)
    score = evaluate(eval_loss_fn or loss_fn, settings.batch_size)
    opt_state = optimizer.init(params)
    key = jax.random.key(settings.seed)
    best = (math.inf, 0, params)
    history: list[dict] = []
    stopped = "max epochs"
    for epoch in range(1, settings.epochs + 1):
        start = time.perf_counter()
        key, sub = jax.random.split(key)
        params, opt_state, train_loss = step(params, opt_state, train_data, sub)
        val_loss = float(score(params, val_data))  # the one host sync of the epoch
        train_loss = float(train_loss)
        seconds = time.perf_counter() - start
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            stopped = "not finite"
            history.append(_row(epoch, train_loss, val_loss, False, seconds))
            break
        improved = val_loss < best[0] - settings.min_delta
        if improved:
            best = (val_loss, epoch, params)
        history.append(_row(epoch, train_loss, val_loss, improved, seconds))
        if on_epoch is not None:
            steps = n // settings.batch_size
            on_epoch(EpochReport(epoch, train_loss, val_loss, improved, seconds, steps * settings.batch_size, params))
        if settings.patience is not None and epoch - best[1] >= settings.patience:
            stopped = "early stopping"
            break
    return TrainResult(best[2], best[1], best[0], len(history), stopped, history)


def _row(epoch, train_loss, val_loss, best, seconds) -> dict:
    return {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "best": best, "seconds": seconds}
