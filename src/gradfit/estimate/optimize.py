"""Maximisers, all with bounds: quasi-Newton (L-BFGS-B), trust-region BFGS from the BHHH matrix, trust-region
Newton with the exact Hessian, and trust-region BFGS on a box (Biogeme 3.2's default algorithm).

Each is a step function driven by one loop (`maximize`), which owns the stopping rule, the history and the
progress callback, so that both methods stop on the same criterion and report the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.optimize
from threadpoolctl import threadpool_limits

from gradfit.errors import EstimationError
from gradfit.estimate._box import cauchy_point, damped_bfgs, truncated_cg
from gradfit.estimate.problem import Problem


@dataclass(frozen=True)
class Iterate:
    iteration: int
    loglikelihood: float
    gradient_norm: float
    relative_gradient: float
    step: float
    elapsed: float
    theta: np.ndarray | None = None  # the parameters at this iterate (for checkpoints)


@dataclass
class OptimResult:
    theta: np.ndarray
    loglikelihood: float
    gradient: np.ndarray
    iterations: int
    converged: bool
    message: str
    history: list[Iterate] = field(default_factory=list)


def relative_gradient(theta, ll, grad, lower, upper) -> float:
    """max_i |g_i| max(|theta_i|, 1) / max(|LL|, 1) over parameters not held at a bound by the gradient."""
    g = projected_gradient(theta, grad, lower, upper)
    return float(np.max(np.abs(g) * np.maximum(np.abs(theta), 1.0)) / max(abs(ll), 1.0)) if g.size else 0.0


def projected_gradient(theta, grad, lower, upper) -> np.ndarray:
    """Zero where a bound is active and the gradient (of a maximisation) pushes beyond it."""
    at_lo = (theta <= lower) & (grad < 0)
    at_hi = (theta >= upper) & (grad > 0)
    return np.where(at_lo | at_hi, 0.0, grad)


class _Driver:
    """Shared loop state: history, stopping rule, progress."""

    def __init__(self, problem: Problem, tolerance: float, progress: Callable[[Iterate], None] | None):
        self.p, self.tol, self.progress = problem, tolerance, progress
        self.t0 = time.perf_counter()
        self.history: list[Iterate] = []

    def record(self, theta, ll, grad, step) -> bool:
        """Log one iterate; True when converged."""
        rel = relative_gradient(theta, ll, grad, self.p.lower, self.p.upper)
        g = projected_gradient(theta, grad, self.p.lower, self.p.upper)
        it = Iterate(
            len(self.history),
            float(ll),
            float(np.linalg.norm(g)),
            rel,
            float(step),
            time.perf_counter() - self.t0,
            np.array(theta, dtype=float),
        )
        self.history.append(it)
        if self.progress is not None:
            self.progress(it)
        return rel <= self.tol


def _check_start(problem: Problem) -> tuple[float, np.ndarray]:
    ll, g = problem.value_and_grad(problem.start)
    if not np.isfinite(ll) or not np.all(np.isfinite(g)):
        bad = [n for n, v in zip(problem.names, g, strict=True) if not np.isfinite(v)][:5]
        what = f"log-likelihood {ll}" if not np.isfinite(ll) else f"gradient for {bad}"
        raise EstimationError(f"start values give a non-finite {what}; change the start values or bounds")
    return ll, g


def bfgs(problem: Problem, tolerance: float, max_iterations: int, progress=None) -> OptimResult:
    ll0, g0 = _check_start(problem)
    drv = _Driver(problem, tolerance, progress)
    if drv.record(problem.start, ll0, g0, 0.0):
        return OptimResult(
            problem.start.copy(), ll0, g0, 0, True, "start values satisfy the gradient tolerance", drv.history
        )
    cache: dict[str, object] = {}

    def fun(x):
        ll, g = problem.value_and_grad(x)
        cache.update(x=x.copy(), ll=ll, g=g)
        if not np.isfinite(ll):
            return np.inf, np.zeros_like(x)
        return -ll, -g

    last = [problem.start.copy()]

    def callback(intermediate_result):
        x = intermediate_result.x
        if not np.array_equal(cache.get("x"), x):
            fun(x)
        step = float(np.linalg.norm(x - last[0]))
        last[0] = x.copy()
        if drv.record(x, cache["ll"], cache["g"], step):
            raise StopIteration

    bounds = list(
        zip(
            np.where(np.isfinite(problem.lower), problem.lower, None),
            np.where(np.isfinite(problem.upper), problem.upper, None),
            strict=True,
        )
    )
    res = scipy.optimize.minimize(
        fun,
        problem.start,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        callback=callback,
        options={"maxiter": max_iterations, "maxcor": 30, "ftol": 1e-15, "gtol": 1e-12, "maxls": 50},
    )
    theta = np.asarray(res.x)
    ll, g = problem.value_and_grad(theta)
    converged = relative_gradient(theta, ll, g, problem.lower, problem.upper) <= tolerance
    message = "relative gradient below tolerance" if converged else f"L-BFGS-B stopped: {res.message}"
    return OptimResult(theta, float(ll), g, len(drv.history) - 1, converged, message, drv.history)


def _trust_region_step(g: np.ndarray, H: np.ndarray, radius: float) -> np.ndarray:
    """argmax_s g.s + s'Hs/2 subject to |s| <= radius (exact solution via the eigendecomposition of -H)."""
    lam, V = np.linalg.eigh(-H)
    gv = V.T @ g
    if lam[0] > 0:
        s = V @ (gv / lam)
        if np.linalg.norm(s) <= radius:
            return s
    # Find mu > max(0, -lam_min) with |s(mu)| = radius, s(mu) = V (gv / (lam + mu)); Newton on 1/|s| - 1/radius.
    mu = max(0.0, -lam[0]) + 1e-10 * max(1.0, abs(lam[-1]))
    for _ in range(100):
        d = lam + mu
        norm = np.linalg.norm(gv / d)
        if abs(norm - radius) <= 1e-8 * radius:
            break
        dnorm = -np.sum(gv**2 / d**3) / norm
        mu_new = mu - (1 / norm - 1 / radius) / (-dnorm / norm**2)
        mu = mu_new if mu_new > max(0.0, -lam[0]) else (mu + max(0.0, -lam[0])) / 2 + 1e-12
        if norm < radius and mu <= max(0.0, -lam[0]) + 1e-12:
            break  # hard case: the boundary cannot be reached along the gradient's components
    s = V @ (gv / (lam + mu))
    norm = np.linalg.norm(s)
    return s * (radius / norm) if norm > radius else s


def _bounded_step(problem: Problem, theta, g, H, radius) -> tuple[np.ndarray, np.ndarray]:
    """Trust-region step in the free subspace (parameters not held at a bound by the gradient), clipped to
    the bounds: (step, trial point)."""
    free = projected_gradient(theta, g, problem.lower, problem.upper) != 0
    free |= (theta > problem.lower) & (theta < problem.upper)
    s = np.zeros_like(theta)
    s[free] = _trust_region_step(g[free], H[np.ix_(free, free)], radius)
    trial = np.clip(theta + s, problem.lower, problem.upper)
    return trial - theta, trial


def _next_radius(rho: float, step: float, radius: float) -> float:
    """Shrink to a quarter of the step after a poor one; double after a good step that reached the boundary."""
    if rho < 0.25:
        return 0.25 * max(step, 1e-12)
    if rho > 0.75 and step >= 0.99 * radius:
        return radius * 2.0
    return radius


def newton(problem: Problem, tolerance: float, max_iterations: int, progress=None) -> OptimResult:
    theta = problem.start.copy()
    ll, g = _check_start(problem)
    H = problem.hessian(theta)
    drv = _Driver(problem, tolerance, progress)
    radius = max(1.0, 0.1 * float(np.linalg.norm(theta)))
    message, converged = "iteration limit reached", drv.record(theta, ll, g, 0.0)
    iterations = 0
    while not converged and iterations < max_iterations:
        iterations += 1
        s, trial = _bounded_step(problem, theta, g, H, radius)
        predicted = g @ s + 0.5 * s @ H @ s
        ll_new, g_new = problem.value_and_grad(trial)
        actual = ll_new - ll if np.isfinite(ll_new) else -np.inf
        rho = actual / predicted if predicted > 0 else (1.0 if actual >= 0 else -1.0)
        step = float(np.linalg.norm(s))
        if rho > 1e-4:
            theta, ll, g = trial, ll_new, g_new
            H = problem.hessian(theta)
            converged = drv.record(theta, ll, g, step)
        elif _below_rounding(problem, predicted, ll):
            message = ROUNDING_STOP
            break
        radius = _next_radius(rho, step, radius)
        if radius < 1e-14:
            message = "trust region collapsed: no improving step found"
            break
    if converged:
        message = "relative gradient below tolerance"
    return OptimResult(theta, float(ll), g, len(drv.history) - 1, converged, message, drv.history)


ROUNDING_STOP = (
    "stopped at the working precision: the predicted gain is below the log-likelihood's rounding error "
    "(a float32 or mixed model cannot meet the tolerance; use float64 to polish)"
)


def _below_rounding(problem: Problem, predicted: float, ll: float) -> bool:
    """A rejected step whose predicted gain is below the LL's rounding error: further steps cannot be judged."""
    return problem.rounding > 0 and predicted <= problem.rounding * max(abs(ll), 1.0)


def _bfgs_update(B: np.ndarray, s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """BFGS update of B (an approximation of minus the Hessian) from step s and y = g_old - g_new.

    Skipped when the curvature condition s'y > 0 fails (clearly): the update would lose positive definiteness.
    """
    sy = float(s @ y)
    if sy <= 1e-10 * np.linalg.norm(s) * np.linalg.norm(y):
        return B
    Bs = B @ s
    return B - np.outer(Bs, Bs) / float(s @ Bs) + np.outer(y, y) / sy


def _bhhh(problem: Problem, theta: np.ndarray) -> np.ndarray:
    """Outer product of the per-individual scores: minus the Hessian's expectation at the true parameters,
    and a positive semi-definite first curvature estimate anywhere (a small ridge makes it definite)."""
    s = problem.scores(theta)
    B = s.T @ s
    ridge = 1e-10 * max(float(np.trace(B)) / max(len(B), 1), 1e-300)
    return B + ridge * np.eye(len(B))


def trust_bfgs(problem: Problem, tolerance: float, max_iterations: int, progress=None) -> OptimResult:
    """Trust-region BFGS on a dense curvature matrix that starts from the BHHH matrix instead of the identity.

    With the scores' outer product as first curvature the first steps are already scaled like Newton steps
    (parameters differing by orders of magnitude in scale cost no iterations), and BFGS updates then correct it
    toward the true Hessian. Bounds are handled as in `newton`: the step is taken in the free subspace and
    clipped.
    """
    theta = problem.start.copy()
    ll, g = _check_start(problem)
    B = _bhhh(problem, theta)
    drv = _Driver(problem, tolerance, progress)
    radius = max(1.0, 0.1 * float(np.linalg.norm(theta)))
    message, converged = "iteration limit reached", drv.record(theta, ll, g, 0.0)
    evaluations = 0
    while not converged and evaluations < 5 * max_iterations and len(drv.history) <= max_iterations:
        s, trial = _bounded_step(problem, theta, g, -B, radius)
        predicted = g @ s - 0.5 * s @ B @ s
        ll_new, g_new = problem.value_and_grad(trial)
        evaluations += 1
        finite = np.isfinite(ll_new) and np.all(np.isfinite(g_new))
        actual = ll_new - ll if finite else -np.inf
        rho = actual / predicted if predicted > 0 else (1.0 if actual >= 0 else -1.0)
        step = float(np.linalg.norm(s))
        if finite:
            B = _bfgs_update(B, s, g - g_new)
        if rho > 1e-4:
            theta, ll, g = trial, ll_new, g_new
            converged = drv.record(theta, ll, g, step)
        elif _below_rounding(problem, predicted, ll):
            message = ROUNDING_STOP
            break
        radius = _next_radius(rho, step, radius)
        if radius < 1e-14:
            message = "trust region collapsed: no improving step found"
            break
    if converged:
        message = "relative gradient below tolerance"
    return OptimResult(theta, float(ll), g, len(drv.history) - 1, converged, message, drv.history)


# The conjugate-gradient tolerance of box_trust_bfgs, on the average log-likelihood's model gradient: Biogeme's
# eps^(1/3), or _CG_RELATIVE times the gradient's norm where that is smaller. Biogeme stops at a relative gradient
# of eps^(1/3) as well; gradfit's tolerance (1e-6 by default) goes further, and there a gradient already below
# the absolute tolerance left the subproblem at its Cauchy point, a steepest-descent step: Optima classic on one
# CPU device crawled from iteration ~140 at a relative gradient of 1.4e-6 until the iteration limit. Far from
# the optimum the absolute tolerance is the smaller, so the path (Biogeme's, from the same start) is unchanged.
_CG_TOLERANCE = float(np.finfo(float).eps ** (1 / 3))
_CG_RELATIVE = 0.1


def box_trust_bfgs(problem: Problem, tolerance: float, max_iterations: int, progress=None) -> OptimResult:
    """Trust-region BFGS on a box, the algorithm Biogeme 3.2 runs by default ("BFGS with trust region for
    simple bound constraints"), on the same scale, so that from the same start it takes the same path.

    It minimises minus the *average* log-likelihood (over `problem.observations`) with a dense BFGS matrix
    that starts as the identity (damped updates, Powell's rule), a trust region in the infinity norm of
    radius 1 intersected with the bounds, and the subproblem solved by a generalized Cauchy point and
    truncated conjugate gradients (`_box`). A step is accepted when its actual gain is at least 0.1 of the
    predicted one; the radius doubles after a gain of 0.9 of the prediction and halves (at most to half the
    step's length) after a rejection. Use it to replicate a Biogeme estimate: on a likelihood with several
    local maxima (e.g. a Gauss-Hermite integral with a steep integrand) the path decides which one an
    optimiser reaches. Otherwise `trust_bfgs` needs fewer iterations (its first curvature is the BHHH matrix).
    """
    scale = 1.0 / max(problem.observations, 1)
    theta = problem.start.copy()
    ll, g = _check_start(problem)
    B = np.eye(len(theta))  # curvature of minus the average log-likelihood
    drv = _Driver(problem, tolerance, progress)
    radius = 1.0
    message, converged = "iteration limit reached", drv.record(theta, ll, g, 0.0)
    evaluations = 0
    while not converged and evaluations < 5 * max_iterations and len(drv.history) <= max_iterations:
        lo, hi = np.maximum(problem.lower, theta - radius), np.minimum(problem.upper, theta + radius)
        gf = -scale * g
        cg_tolerance = min(_CG_TOLERANCE, _CG_RELATIVE * float(np.linalg.norm(gf)))
        trial = truncated_cg(theta, gf, B, lo, hi, cauchy_point(theta, gf, B, lo, hi), cg_tolerance)
        s = trial - theta
        predicted = -(s @ gf) - 0.5 * s @ B @ s  # predicted decrease of minus the average LL
        ll_new, g_new = problem.value_and_grad(trial)
        evaluations += 1
        finite = np.isfinite(ll_new) and np.all(np.isfinite(g_new))
        rho = scale * (ll_new - ll) / predicted if finite and predicted > 0 else -np.inf
        if rho >= 0.1:
            B = damped_bfgs(B, s, scale * (g - g_new))
            theta, ll, g = trial, ll_new, g_new
            converged = drv.record(theta, ll, g, float(np.linalg.norm(s)))
            if rho >= 0.9:
                radius *= 2.0
        elif _below_rounding(problem, predicted / scale, ll):
            message = ROUNDING_STOP
            break
        else:
            radius = min(radius / 2.0, float(np.max(np.abs(s))) / 2.0)
            if radius <= np.finfo(float).eps:
                message = "trust region collapsed: no improving step found"
                break
    if converged:
        message = "relative gradient below tolerance"
    return OptimResult(theta, float(ll), g, len(drv.history) - 1, converged, message, drv.history)


OPTIMIZERS = {"bfgs": bfgs, "newton": newton, "trust_bfgs": trust_bfgs, "box_trust_bfgs": box_trust_bfgs}


def maximize(problem: Problem, method: str, tolerance: float, max_iterations: int, progress=None) -> OptimResult:
    # The optimisers' dense linear algebra (eigh of a P x P matrix) is small; with BLAS threads, OpenBLAS leaves
    # them spinning after each call and they take the cores from XLA's next likelihood evaluation (Optima
    # classic, 2 cores: 74 ms per value+gradient instead of 44). One BLAS thread while the optimiser runs.
    with threadpool_limits(limits=1, user_api="blas"):
        return OPTIMIZERS[method](problem, tolerance, max_iterations, progress)
