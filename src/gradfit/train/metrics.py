"""Probabilistic classification metrics, in numpy (host): Brier score, log-loss and ROC AUC."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((np.asarray(p, float) - np.asarray(y, float)) ** 2))


def log_loss(y: np.ndarray, p: np.ndarray, eps: float = 1e-15) -> float:
    """Mean negative log-likelihood; p is clipped to [eps, 1 - eps] only so that a hard 0 or 1 stays finite."""
    y, p = np.asarray(y, float), np.clip(np.asarray(p, float), eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve: the Mann-Whitney statistic with mid-ranks for ties; NaN with one class only."""
    y = np.asarray(y, bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(p, float))
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Brier, log-loss, AUC, and the base rate and mean prediction (a calibration-in-the-large check)."""
    y = np.asarray(y, float)
    return {
        "brier": brier(y, p),
        "log_loss": log_loss(y, p),
        "auc": roc_auc(y, p),
        "base_rate": float(y.mean()),
        "mean_prediction": float(np.mean(p)),
    }
