"""The trust-region subproblem on a box: minimise m(x) = g'(x - x0) + (x - x0)'H(x - x0)/2 over lo <= x <= hi.

The box is the trust region in the infinity norm intersected with the parameters' bounds, so one set of
simple bounds carries both. Solved approximately, as Conn, Gould and Toint (1988, Math. Comp. 50:399-430)
do: the generalized Cauchy point (the first local minimiser of m along the steepest-descent path projected
onto the box), then conjugate gradients on the parameters that are not at a bound there, stopped at the
box's edge or at negative curvature. All in minimisation form; the caller negates a log-likelihood.
"""

from __future__ import annotations

import numpy as np

_TINY = np.finfo(float).eps


def max_step(x: np.ndarray, d: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[float, np.ndarray]:
    """Largest t >= 0 with lo <= x + t d <= hi, and the indices whose bound stops it (t = inf: none)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d > _TINY, (hi - x) / d, np.where(d < -_TINY, (lo - x) / d, np.inf))
    if t.size == 0:
        return np.inf, np.empty(0, dtype=int)
    t_min = float(np.min(t))
    return t_min, np.flatnonzero(t == t_min)


def cauchy_point(x0, g, H, lo, hi) -> np.ndarray:
    """First local minimiser of the model along x0 - t g projected onto the box (piecewise linear path).

    Each segment of the path ends where one more parameter reaches its bound; along a segment the model is a
    parabola in t, so the first segment on which it turns upward (or ends) holds the point.
    """
    x, d = x0.copy(), -g.copy()
    d[((d > 0) & (x >= hi)) | ((d < 0) & (x <= lo))] = 0.0  # already at a bound in the descent direction
    while np.any(d != 0.0):
        t_end, stopped = max_step(x, d, lo, hi)
        slope = (g + H @ (x - x0)) @ d
        if slope >= 0.0:
            return x
        curvature = d @ H @ d
        if curvature > 0.0 and -slope / curvature < t_end:
            return x - (slope / curvature) * d
        if not np.isfinite(t_end):  # unbounded box and no upward turn: no finite minimiser along the path
            return x
        x = np.clip(x + t_end * d, lo, hi)
        d[stopped] = 0.0
    return x


def truncated_cg(x0, g, H, lo, hi, start, tolerance: float) -> np.ndarray:
    """Improve the model from `start` (the Cauchy point) by conjugate gradients on the parameters that are
    free there, stopping at the box's edge, at negative curvature, or when the model's gradient in that
    subspace is below `tolerance` in norm."""
    x = start.copy()
    free = (x - lo > _TINY) & (hi - x > _TINY)
    if not free.any():
        return x
    residual = -(g + H @ (x - x0))[free]  # minus the model's gradient
    xf, Hf, lof, hif = x[free], H[np.ix_(free, free)], lo[free], hi[free]
    p = np.zeros_like(residual)
    rr_old, rr = 1.0, float(residual @ residual)
    while rr >= tolerance * tolerance:
        p = residual + (rr / rr_old) * p
        Hp = Hf @ p
        to_edge, _ = max_step(xf, p, lof, hif)
        pHp = float(p @ Hp)
        if pHp <= 0.0 or rr / pHp > to_edge:  # negative curvature, or the minimiser lies beyond the box
            xf = np.clip(xf + to_edge * p, lof, hif) if np.isfinite(to_edge) else xf
            break
        alpha = rr / pHp
        xf = xf + alpha * p
        residual = residual - alpha * Hp
        rr_old, rr = rr, float(residual @ residual)
    x[free] = xf
    return x


def damped_bfgs(H: np.ndarray, s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """BFGS update of the Hessian approximation H from step s and gradient change y, with Powell's damping:
    where s'y < 0.2 s'Hs, y is replaced by a mix of y and Hs, so H stays positive definite."""
    Hs = H @ s
    sHs, sy = float(s @ Hs), float(s @ y)
    if sHs <= 0.0:
        return H
    if sy < 0.2 * sHs:
        w = 0.8 * sHs / (sHs - sy)
        y = w * y + (1.0 - w) * Hs
    return H - np.outer(Hs, Hs) / sHs + np.outer(y, y) / float(s @ y)
