"""Covariance estimates at the optimum: inverse Hessian, BHHH (outer product of scores) and robust sandwich."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Covariances:
    hessian: np.ndarray  # inverse of minus the Hessian
    bhhh: np.ndarray  # inverse of the outer product of per-individual scores
    robust: np.ndarray  # sandwich: H^-1 B H^-1
    min_eigenvalue: float  # of minus the Hessian; <= 0 means not a strict maximum / not identified
    condition_number: float


def _inverse(m: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric matrix; NaN where it is singular (so SEs show as NaN, never as made-up numbers)."""
    lam, V = np.linalg.eigh(m)
    if lam.size and lam[0] <= lam[-1] * 1e-14:
        return np.full_like(m, np.nan)
    return (V / lam) @ V.T


def covariances(hessian: np.ndarray, scores: np.ndarray) -> Covariances:
    neg_h = -0.5 * (hessian + hessian.T)
    lam = np.linalg.eigvalsh(neg_h) if neg_h.size else np.array([1.0])
    cov_h = _inverse(neg_h)
    bhhh = scores.T @ scores
    return Covariances(
        hessian=cov_h,
        bhhh=_inverse(bhhh),
        robust=cov_h @ bhhh @ cov_h,
        min_eigenvalue=float(lam[0]),
        condition_number=float(abs(lam[-1] / lam[0])) if lam[0] != 0 else float("inf"),
    )
