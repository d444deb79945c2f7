"""The biLM workload driven by the minibatch trainer, with metrics that cost nothing between their turns.

Every `metrics.every` steps (one device call, `block_steps`), the host reads the block's step losses (kept
on the device until then) and a fixed sample of validation windows is scored: perplexity, top-1 and top-5
accuracy, both directions. Every `analysis_every` steps a few windows' predictions are decoded into words
(an error-analysis sample). Every `checkpoint_every` steps the whole training state goes to the caller, who
writes it (this layer does no I/O). Nothing else syncs with the host, nothing is computed per step on the
host, and no device cache is flushed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gradfit.bilm import model as bilm
from gradfit.bilm.data import Corpus, split, windows
from gradfit.train.loop import BlockReport, EpochReport, TrainResult, TrainSettings, TrainState, train


class BilmData(NamedTuple):
    train: jnp.ndarray  # (n, window + 2) type ids, on the device
    validation: jnp.ndarray
    sample: jnp.ndarray  # the validation windows scored every `metrics.every` steps
    char_table: jnp.ndarray  # (types, max_chars)
    to_vocab: jnp.ndarray  # (types,)


def prepare(corpus: Corpus, window: int, validation: float, seed: int, sample_windows: int) -> BilmData:
    train_w, val_w = split(windows(corpus.stream, window), validation, seed)
    return BilmData(
        jnp.asarray(train_w),
        jnp.asarray(val_w),
        jnp.asarray(val_w[:sample_windows]),
        jnp.asarray(corpus.chars),
        jnp.asarray(corpus.to_vocab),
    )


def optimizer(learning_rate: float, clip_norm: float | None) -> optax.GradientTransformation:
    adam = optax.adam(learning_rate)
    return optax.chain(optax.clip_by_global_norm(clip_norm), adam) if clip_norm else adam


class Cadence(NamedTuple):
    every: int  # steps per device call: losses and sample metrics then
    analysis_every: int
    analysis_windows: int
    checkpoint_every: int


def _crossed(before: int, after: int, every: int) -> bool:
    return after // every > before // every


def analysis_sample(params, setup: bilm.Setup, windows_batch, data: BilmData, types) -> list[dict]:
    """The forward model's top-1 prediction at each position of a few windows, as words, with the truth."""
    chars, yf, _ = bilm.window_batch(windows_batch, data.char_table, data.to_vocab)
    _, fwd, _ = bilm.layers(params, chars, setup)
    logits = fwd[-1] @ params["softmax"]["w"] + params["softmax"]["b"]
    pred = np.asarray(jnp.argmax(logits, axis=-1))
    truth, inputs = np.asarray(yf), np.asarray(windows_batch[:, 1:-1])
    out = []
    for row in range(pred.shape[0]):
        keep = truth[row] != 0
        out.append(
            {
                "input": [types[i] for i in inputs[row][keep]],
                "target": [types[i] for i in truth[row][keep]],
                "predicted": [types[i] for i in pred[row][keep]],
                "accuracy": float(np.mean(pred[row][keep] == truth[row][keep])) if keep.any() else math.nan,
            }
        )
    return out


def train_bilm(
    data: BilmData,
    setup: bilm.Setup,
    settings: TrainSettings,
    learning_rate: float,
    clip_norm: float | None,
    cadence: Cadence,
    types: tuple[str, ...],
    on_metrics: Callable[[dict], None] = lambda row: None,
    on_analysis: Callable[[int, list[dict]], None] = lambda step, rows: None,
    on_checkpoint: Callable[[TrainState], None] = lambda state: None,
    on_epoch: Callable[[EpochReport], None] | None = None,
    state: TrainState | None = None,
    params: Any = None,
) -> TrainResult:
    """Train (or continue from `state`), early-stopped on the validation loss (log perplexity)."""
    params = params if params is not None else bilm.init_params(jax.random.key(settings.seed), setup)
    loss = bilm.loss_fn(setup, data.char_table, data.to_vocab, train=True)
    eval_loss = bilm.loss_fn(setup, data.char_table, data.to_vocab, train=False)
    tokens_per_step = settings.batch_size * settings.accumulate * (int(data.train.shape[1]) - 2)
    clock = {"t": time.perf_counter(), "step": state.step if state is not None else 0}

    def on_block(block: BlockReport) -> None:
        losses = np.asarray(block.losses)  # the block's one read of the device
        totals = np.asarray(bilm.token_metrics(block.state.params, data.sample, data.char_table, data.to_vocab, setup))
        now = time.perf_counter()
        steps = block.step - clock["step"]
        seconds = now - clock["t"]
        nll, count, hit1, hit5 = totals
        on_metrics(
            {
                "step": block.step,
                "epoch": block.epoch,
                "loss": float(losses.mean()),
                "loss_last": float(losses[-1]),
                "sample_perplexity": float(np.exp(nll / max(count, 1))),
                "sample_accuracy": float(hit1 / max(count, 1)),
                "sample_top5": float(hit5 / max(count, 1)),
                "tokens_per_second": steps * tokens_per_step / seconds if seconds > 0 else math.nan,
                "seconds": seconds,
            }
        )
        before = clock["step"]
        if _crossed(before, block.step, cadence.analysis_every):
            rows = analysis_sample(block.state.params, setup, data.validation[: cadence.analysis_windows], data, types)
            on_analysis(block.step, rows)
        if _crossed(before, block.step, cadence.checkpoint_every):
            on_checkpoint(block.state)
        clock["t"], clock["step"] = time.perf_counter(), block.step

    return train(
        params,
        loss,
        optimizer(learning_rate, clip_norm),
        data.train,
        data.validation,
        settings,
        on_epoch=on_epoch,
        eval_loss_fn=eval_loss,
        on_block=on_block,
        state=state,
    )
