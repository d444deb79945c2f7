"""The step (device) and the training driver (host): see the package docstring.

One optimiser step takes `accumulate` micro-batches of `batch_size` examples and averages their gradients, so
it equals one step on their union (up to the order of float additions). The steps of a block run in one
jitted `lax.scan`; the block's per-step losses stay on the device until the caller reads them. The whole
position of the run is a `TrainState`: continuing from a saved state repeats exactly what an uninterrupted
run does, because each epoch's shuffle and each step's key are derived from (seed, epoch, step), not drawn
from a stream.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
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
    batch_size: int  # examples per micro-batch
    patience: int | None = 5  # epochs without a better validation loss before stopping; None: never
    min_delta: float = 0.0  # an improvement smaller than this does not count
    seed: int = 0
    accumulate: int = 1  # micro-batches per optimiser step (gradient accumulation)
    block_steps: int | None = None  # optimiser steps per device call; None: a whole epoch
    max_steps: int | None = None  # stop after this many optimiser steps in all


class TrainState(NamedTuple):
    """Where a run stands, between two blocks: enough to continue it exactly."""

    params: Any
    opt_state: Any
    epoch: int  # the epoch in progress, 1-based
    position: int  # optimiser steps done in this epoch
    step: int  # optimiser steps done in all
    loss_sum: Any  # sum of this epoch's step losses so far (a device scalar: adding it costs no sync)
    best_val: float
    best_epoch: int
    best_params: Any
    history: tuple  # one dict per finished epoch


class BlockReport(NamedTuple):
    epoch: int
    step: int  # optimiser steps done in all, after this block
    losses: jnp.ndarray  # (steps in the block,) mean training loss of each step: on the device, unread
    seconds: float  # wall time of the block, dispatch to the caller's turn (device work may still be running)
    state: TrainState  # the state after this block (a checkpoint)


class EpochReport(NamedTuple):
    epoch: int  # 1-based
    train_loss: float
    val_loss: float
    best: bool  # this epoch has the best validation loss so far
    seconds: float
    examples: int  # training examples seen this epoch
    params: Any  # this epoch's parameters (device arrays)
    step: int = 0  # optimiser steps done in all by this epoch's end


class TrainResult(NamedTuple):
    params: Any  # the best epoch's parameters
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    stopped: str  # "early stopping", "max epochs", "max steps", "not finite"
    history: list[dict]
    state: TrainState  # the final state (to continue training)


@partial(jax.jit, static_argnames=("n", "examples_per_step"))
def epoch_rows(n: int, examples_per_step: int, seed, epoch) -> jnp.ndarray:
    """(steps, examples_per_step) row indices of one epoch's shuffled pass; the remainder waits for later epochs."""
    steps = n // examples_per_step
    key = jax.random.fold_in(jax.random.key(seed), epoch)
    return jax.random.permutation(key, n)[: steps * examples_per_step].reshape(steps, examples_per_step)


def _steps(loss_fn: LossFn, optimizer: optax.GradientTransformation, batch_size: int, accumulate: int = 1):
    """(params, opt_state, data, rows (S, accumulate * batch), keys (S,)) -> (params, opt_state, losses), unjitted."""

    def batch_loss(params, batch, key):
        return jnp.mean(loss_fn(params, batch, key))

    grad = jax.value_and_grad(batch_loss)

    def one_step(params, opt_state, data, rows, key):
        micro = rows.reshape(accumulate, batch_size)
        if accumulate == 1:
            loss, grads = grad(params, jax.tree_util.tree_map(lambda x: x[micro[0]], data), key)
        else:
            # average the micro-batches' gradients: the same step as one batch of all their examples
            def add(total, part):
                index, k = part
                loss, g = grad(params, jax.tree_util.tree_map(lambda x: x[index], data), k)
                return jax.tree_util.tree_map(jnp.add, total, (loss, g)), None

            zero = (jnp.zeros((), jnp.float32), jax.tree_util.tree_map(jnp.zeros_like, params))
            (loss, grads), _ = jax.lax.scan(add, zero, (micro, jax.random.split(key, accumulate)))
            loss, grads = jax.tree_util.tree_map(lambda v: v / accumulate, (loss, grads))
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    def run(params, opt_state, data, rows, keys):
        def body(carry, step):
            params, opt_state = carry
            params, opt_state, loss = one_step(params, opt_state, data, *step)
            return (params, opt_state), loss.astype(jnp.float32)

        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), (rows, keys))
        return params, opt_state, losses

    return run


def block_step(loss_fn: LossFn, optimizer: optax.GradientTransformation, batch_size: int, accumulate: int = 1):
    """A jitted (params, opt_state, data, rows (S, accumulate * batch), keys (S,)) -> (params, opt_state, losses)."""
    return jax.jit(_steps(loss_fn, optimizer, batch_size, accumulate))


def _driver_block(loss_fn, optimizer, settings: TrainSettings):
    """The driver's device call: slice the epoch's rows, derive the steps' keys and run them, all in one jit."""
    run = _steps(loss_fn, optimizer, settings.batch_size, settings.accumulate)
    base = settings.seed + 1

    @partial(jax.jit, static_argnames=("size",))
    def block(params, opt_state, data, rows, start, step0, size):
        keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(base), s))(step0 + jnp.arange(size))
        return run(params, opt_state, data, jax.lax.dynamic_slice_in_dim(rows, start, size), keys)

    return block


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


def initial_state(params: Any, optimizer: optax.GradientTransformation) -> TrainState:
    return TrainState(params, optimizer.init(params), 1, 0, 0, jnp.zeros((), jnp.float32), math.inf, 0, params, ())


def train(
    params: Any,
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    train_data: Any,
    val_data: Any,
    settings: TrainSettings,
    on_epoch: Callable[[EpochReport], None] | None = None,
    eval_loss_fn: LossFn | None = None,
    on_block: Callable[[BlockReport], None] | None = None,
    state: TrainState | None = None,
) -> TrainResult:
    """Train with early stopping on the validation loss; returns the best epoch's parameters.

    `loss_fn` is what is minimised (it may weight classes or use dropout); `eval_loss_fn` (default the same)
    is what decides the best epoch and early stopping: give the plain, unweighted loss there. `on_block` sees
    every block (its losses still on the device) and the state after it; `state` continues a saved run.
    """
    n = jax.tree_util.tree_leaves(train_data)[0].shape[0]
    per_step = settings.batch_size * settings.accumulate
    if n < per_step:
        raise GradfitError(
            f"batch size {settings.batch_size} x {settings.accumulate} accumulated: only {n} training examples; "
            f"choose a batch size of at most {n // settings.accumulate}"
        )
    steps_per_epoch = n // per_step
    block = min(settings.block_steps or steps_per_epoch, steps_per_epoch)
    run = _driver_block(loss_fn, optimizer, settings)
    score = evaluate(eval_loss_fn or loss_fn, settings.batch_size)
    state = state or initial_state(params, optimizer)
    # counters as Python numbers, however the state was stored (a checkpoint may hold them as arrays)
    state = state._replace(
        epoch=int(state.epoch), position=int(state.position), step=int(state.step),
        best_val=float(state.best_val), best_epoch=int(state.best_epoch),
    )  # fmt: skip
    stopped = "max epochs"
    while state.epoch <= settings.epochs:
        start = time.perf_counter()
        rows = epoch_rows(n, per_step, settings.seed, state.epoch)
        while state.position < steps_per_epoch:
            if settings.max_steps is not None and state.step >= settings.max_steps:
                return _result(state, "max steps")
            size = min(block, steps_per_epoch - state.position)
            if settings.max_steps is not None:
                size = min(size, settings.max_steps - state.step)
            t0 = time.perf_counter()
            new_params, opt_state, losses = run(
                state.params, state.opt_state, train_data, rows, state.position, state.step, size
            )
            state = state._replace(
                params=new_params,
                opt_state=opt_state,
                position=state.position + size,
                step=state.step + size,
                loss_sum=state.loss_sum + jnp.sum(losses),
            )
            if on_block is not None:
                on_block(BlockReport(state.epoch, state.step, losses, time.perf_counter() - t0, state))
        train_loss = float(state.loss_sum) / steps_per_epoch
        val_loss = float(score(state.params, val_data))  # with the losses: the host waits here, once an epoch
        seconds = time.perf_counter() - start
        finite = math.isfinite(train_loss) and math.isfinite(val_loss)
        improved = finite and val_loss < state.best_val - settings.min_delta
        row = _row(state.epoch, train_loss, val_loss, improved, seconds, state.step)
        state = state._replace(
            history=(*state.history, row),
            **({"best_val": val_loss, "best_epoch": state.epoch, "best_params": state.params} if improved else {}),
        )
        if not finite:
            stopped = "not finite"
            break
        if on_epoch is not None:
            on_epoch(
                EpochReport(
                    state.epoch,
                    train_loss,
                    val_loss,
                    improved,
                    seconds,
                    steps_per_epoch * per_step,
                    state.params,
                    state.step,
                )  # fmt: skip
            )
        epoch_done = state.epoch
        state = state._replace(epoch=state.epoch + 1, position=0, loss_sum=jnp.zeros((), jnp.float32))
        if settings.patience is not None and epoch_done - state.best_epoch >= settings.patience:
            stopped = "early stopping"
            break
    return _result(state, stopped)


def _result(state: TrainState, stopped: str) -> TrainResult:
    return TrainResult(
        state.best_params, state.best_epoch, state.best_val, len(state.history), stopped, list(state.history), state
    )


def _row(epoch, train_loss, val_loss, best, seconds, step) -> dict:
    return {
        "epoch": epoch,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "best": best,
        "seconds": seconds,
        "step": step,
    }
