"""What the estimation layer needs from a workload: a log-likelihood to maximise, its derivatives, bounds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Problem:
    """A maximum-likelihood problem over the free parameters (all callables take and return numpy)."""

    names: tuple[str, ...]
    start: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    value_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]]  # LL and dLL/dtheta
    hessian: Callable[[np.ndarray], np.ndarray]  # d2LL/dtheta2, (P, P)
    scores: Callable[[np.ndarray], np.ndarray]  # per-individual gradients, (N, P)
    # Relative rounding error of the log-likelihood as computed (0: negligible, float64). The trust-region
    # optimisers stop once the gain they predict is below it: no step could be told apart from rounding.
    rounding: float = 0.0
    # Independent observations (people, or rows of a cross-section): the scale of an average log-likelihood,
    # which `box_trust_bfgs` works on (its first curvature is the identity, so the scale sets its first steps).
    observations: int = 1
