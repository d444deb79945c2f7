"""The gradient-boosted-trees baseline (xgboost) on the same features and game split as the MLP.

Two binary classifiers, as in socceraction's VAEP (depth-3 trees, early stopping on the validation games),
trained on the CPU with the histogram method. Reported next to the MLP so that users can pick.
"""

from __future__ import annotations

import time

import numpy as np

from gradfit.errors import GradfitError


def require_xgboost():
    """The xgboost module, or a one-line error saying how to get it (checked before a run folder is made)."""
    try:
        import xgboost
    except ImportError:
        raise GradfitError(
            "the xgboost baseline needs xgboost: pip install 'gradfit[vaep]', or set baseline.xgboost: false"
        ) from None
    return xgboost


def fit_predict(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    x_test: np.ndarray,
    trees: int = 100,
    max_depth: int = 3,
    learning_rate: float = 0.3,
    early_stopping: int = 10,
    seed: int = 0,
) -> tuple[np.ndarray, dict]:
    """(test probabilities (n_test, 2), info: trees used per head and fit seconds)."""
    xgboost = require_xgboost()

    out, info = [], {"trees": [], "fit_seconds": 0.0}
    start = time.perf_counter()
    for head in range(y_train.shape[1]):
        # the native API: xgboost's scikit-learn wrapper would make scikit-learn a dependency
        dtrain = xgboost.DMatrix(x_train, label=y_train[:, head])
        dval = xgboost.DMatrix(x_val, label=y_val[:, head])
        params = {
            "objective": "binary:logistic",
            "eval_metric": "logloss",
            "max_depth": max_depth,
            "eta": learning_rate,
            "tree_method": "hist",
            "seed": seed,
        }
        booster = xgboost.train(
            params, dtrain, num_boost_round=trees, evals=[(dval, "validation")],
            early_stopping_rounds=early_stopping, verbose_eval=False,
        )  # fmt: skip
        best = int(booster.best_iteration) + 1
        info["trees"].append(best)
        p = booster.predict(xgboost.DMatrix(x_test), iteration_range=(0, best)) if len(x_test) else np.zeros(0)
        out.append(p)
    info["fit_seconds"] = time.perf_counter() - start
    return np.stack(out, axis=1), info
