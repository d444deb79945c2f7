"""One minibatch trainer for the neural workloads (VAEP now, the biLM next): a jitted epoch step and a driver.

The step (`epoch_step`) runs a whole epoch on the device: the data live there, each epoch's shuffle is a
device-side permutation and the batches are gathered inside a `lax.scan`, so the host waits once per epoch,
not once per batch. The driver (`train`) loops over epochs, evaluates, keeps the best parameters, stops
early, and reports each epoch to a callback (the caller writes checkpoints and history: this layer does no
I/O).
"""

from gradfit.train.loop import EpochReport, TrainResult, TrainSettings, epoch_step, evaluate, train
from gradfit.train.metrics import binary_metrics, brier, log_loss, roc_auc

__all__ = [
    "EpochReport",
    "TrainResult",
    "TrainSettings",
    "binary_metrics",
    "brier",
    "epoch_step",
    "evaluate",
    "log_loss",
    "roc_auc",
    "train",
]
