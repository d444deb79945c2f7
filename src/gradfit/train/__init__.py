"""One minibatch trainer for the neural workloads (VAEP and the biLM): a jitted block of steps and a driver.

The step (`block_step`) runs a block of optimiser steps on the device: the data live there, each epoch's
shuffle is a device-side permutation and the batches are gathered inside a `lax.scan`, so the host waits once
per block (a whole epoch by default), not once per batch. The driver (`train`) loops over blocks and epochs,
evaluates, keeps the best parameters, stops early, and reports each block and epoch to callbacks (the caller
writes checkpoints and history: this layer does no I/O). `train.vaep` and `train.bilm` drive the workloads.
"""

from gradfit.train.loop import EpochReport, TrainResult, TrainSettings, evaluate, train
from gradfit.train.metrics import binary_metrics, brier, log_loss, roc_auc

__all__ = [
    "EpochReport",
    "TrainResult",
    "TrainSettings",
    "binary_metrics",
    "brier",
    "evaluate",
    "log_loss",
    "roc_auc",
    "train",
]
