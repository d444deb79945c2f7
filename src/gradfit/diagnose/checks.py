"""The checks of `gradfit diagnose`, each a function of a `gradfit.Model` and free-parameter values.

Compute only: every check returns numbers and `Finding`s; printing is the CLI's job.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp, softmax

from gradfit.diagnose.findings import CRITICAL, OK, WARNING, Diagnosis, Finding
from gradfit.model import Model

EPS = np.finfo(float).eps
# Curvature thresholds relative to the largest |eigenvalue| of -H: below FLAT a direction is numerically flat
# (autodiff Hessians are accurate to ~1e-14 relative); a condition number above WEAK means some combination
# of parameters is determined 1e4 times less precisely than the best one.
FLAT = 1e-12
WEAK = 1e8


def gradient_check(model: Model, params: dict[str, float]) -> tuple[list[dict], list[Finding]]:
    """Autodiff gradient against central finite differences, parameter by parameter.

    Step h_i = eps^(1/3) max(|theta_i|, 1), the step that balances truncation (~h^2) against rounding
    (~eps |LL| / h). The tolerance is estimated, not assumed: the difference between the central differences
    with steps h and 2h (three times the truncation error) plus the rounding error, times 10, and never
    below 1e-6 relative. A parameter is flagged when autodiff and differences disagree by more than that.
    """
    names = model.parameter_names
    theta = np.array([params[n] for n in names], dtype=float)
    ll = model.loglikelihood(params)
    gradient = model.gradient(params)
    grad = np.array([gradient[n] for n in names])

    def f(x):
        return model.loglikelihood(dict(zip(names, x, strict=True)))

    rows, bad = [], []
    for i, name in enumerate(names):
        h = EPS ** (1 / 3) * max(abs(theta[i]), 1.0)
        e = np.zeros_like(theta)
        e[i] = h
        fd1 = (f(theta + e) - f(theta - e)) / (2 * h)
        fd2 = (f(theta + 2 * e) - f(theta - 2 * e)) / (4 * h)
        tol = 10 * (abs(fd1 - fd2) + EPS * max(abs(ll), 1.0) / h) + 1e-6 * max(abs(fd1), 1.0)
        err = abs(grad[i] - fd1)
        finite = np.isfinite(grad[i]) and np.isfinite(fd1)
        flagged = (not finite) or err > tol
        rows.append(
            {
                "parameter": name,
                "autodiff": float(grad[i]),
                "finite_difference": float(fd1),
                "abs_error": float(err),
                "rel_error": float(err / max(abs(fd1), abs(grad[i]), 1e-300)),
                "tolerance": float(tol),
                "flagged": bool(flagged),
            }
        )
        if flagged:
            bad.append(name)
    if bad:
        worst = max((r for r in rows if r["flagged"]), key=lambda r: r["abs_error"] / max(r["tolerance"], 1e-300))
        msg = (
            f"autodiff and finite differences disagree for {len(bad)} parameter(s) ({', '.join(bad[:5])}"
            f"{', ...' if len(bad) > 5 else ''}); worst {worst['parameter']}: {worst['autodiff']:.6g} vs "
            f"{worst['finite_difference']:.6g}; a component's derivative is wrong or the likelihood is not smooth there"
        )
        return rows, [Finding("gradient", CRITICAL, msg, {"parameters": bad})]
    worst = max((r["abs_error"] / r["tolerance"] for r in rows), default=0.0)
    msg = (
        f"gradient matches central finite differences for all {len(rows)} parameters "
        f"(worst at {worst:.2g} of tolerance)"
    )
    return rows, [Finding("gradient", OK, msg)]


def _plain(x):
    """A numpy scalar as a plain Python value (for messages and JSON)."""
    return x.item() if hasattr(x, "item") else x


def _people(model: Model, bad: np.ndarray, limit: int = 5) -> list[dict]:
    out = []
    for p in np.flatnonzero(bad)[:limit]:
        rows = model.file_rows_of(int(p))
        pid = model.person_ids[p]
        out.append({"person": _plain(pid), "rows": [int(r) for r in rows]})
    return out


def nonfinite_locator(model: Model, params: dict[str, float]) -> list[Finding]:
    """If the log-likelihood or gradient is NaN/Inf: which component, which people (file rows), which parameters."""
    ll = model.loglikelihood(params)
    grad = model.gradient(params)
    bad_grad = [n for n, g in grad.items() if not np.isfinite(g)]
    if np.isfinite(ll) and not bad_grad:
        return [Finding("nonfinite", OK, "log-likelihood and gradient are finite")]
    parts = model.components(params)
    comp_grads = model.component_gradients(params)
    findings = []
    for name, values in parts.items():
        bad_people = (values != 0) if name == "structural" else ~np.isfinite(values).all(axis=1)
        if not bad_people.any():
            continue
        where = _people(model, bad_people)
        involved = (
            []
            if name == "structural"
            else [n for n, g in zip(model.parameter_names, comp_grads[name], strict=True) if not np.isfinite(g)]
        )
        what = "latent variables" if name == "structural" else name
        shown = ", ".join(
            f"{w['person']} (rows {', '.join(map(str, w['rows'][:4]))}{', ...' if len(w['rows']) > 4 else ''})"
            for w in where
        )
        msg = (
            f"{what}: non-finite for {int(bad_people.sum())} of {len(bad_people)} people, e.g. {shown}"
            + (f"; parameters involved: {', '.join(involved[:8])}" if involved else "")
            + "; check these parameters' values and bounds and these rows' data"
        )
        findings.append(
            Finding("nonfinite", CRITICAL, msg, {"component": name, "people": where, "parameters": involved})
        )
    if not findings:  # finite per-draw parts, non-finite only after integration or in the gradient
        msg = f"log-likelihood {ll} / gradient non-finite for {', '.join(bad_grad[:8])}; no single component is"
        findings.append(Finding("nonfinite", CRITICAL, msg, {"parameters": bad_grad}))
    return findings


def component_contributions(model: Model, params: dict[str, float]) -> list[dict]:
    """Where the log-likelihood comes from, component by component.

    posterior_mean: sum over people of the component's expectation under each person's posterior over draws;
    these plus the 'integration' term (minus the KL divergence of the posterior from the draw weights) add up
    exactly to the log-likelihood. marginal: the component's own simulated log-likelihood, alone.
    """
    parts = {k: v for k, v in model.components(params).items() if k != "structural"}
    total = sum(parts.values())
    # The draw weights: equal for Monte Carlo draws, not for Gauss-Hermite nodes, whose posterior is
    # proportional to w_r exp(joint_r). (Model has no public accessor for them; diagnose may not import iclv.)
    log_w = model.log_weights
    w = softmax(total + log_w, axis=1)
    rows = [
        {
            "component": name,
            "posterior_mean": float((w * v).sum()),
            "marginal": float(logsumexp(v + log_w, axis=1).sum()),
        }
        for name, v in parts.items()
    ]
    kl = float((w * (np.log(np.clip(w, 1e-300, None)) - log_w)).sum())
    rows.append({"component": "integration", "posterior_mean": -kl, "marginal": None})
    return rows


def identification(
    model: Model, params: dict[str, float], at_estimates: bool, hessian: np.ndarray | None = None
) -> tuple[dict, list[Finding]]:
    """Eigen-decomposition of minus the Hessian: flat directions (unidentified), ill-conditioning, curvature.

    `hessian`: the Hessian at `params` if the caller has it already (it is the expensive part).
    """
    names = model.parameter_names
    H = model.hessian(params).to_numpy() if hessian is None else hessian
    if not np.all(np.isfinite(H)):
        return {}, [Finding("identification", CRITICAL, "the Hessian has non-finite entries; see the NaN report")]
    lam, vec = np.linalg.eigh(-H)
    scale = max(np.abs(lam).max(), 1e-300)
    flat = np.abs(lam) <= FLAT * scale
    # |eigenvalues|: away from the optimum minus the Hessian need not be positive definite, but a direction
    # with (almost) no curvature either way is one the data cannot pin down.
    cond = float(scale / np.abs(lam).min()) if not flat.any() else float("inf")
    eigen = {"eigenvalues": lam.tolist(), "condition_number": cond}
    findings = []
    for k in np.flatnonzero(flat):
        v = vec[:, k]
        involved = [names[i] for i in np.argsort(-np.abs(v)) if abs(v[i]) >= 0.2][:8]
        combo = " ".join(f"{v[names.index(n)]:+.2f}*{n}" for n in involved)
        findings.append(
            Finding(
                "identification",
                CRITICAL,
                f"not identified: the log-likelihood is flat along {combo}; fix one of {', '.join(involved)} "
                "or remove the redundancy",
                {"parameters": involved, "eigenvalue": float(lam[k])},
            )
        )
    if not findings and cond > WEAK:
        weakest = vec[:, np.argmin(np.abs(lam))]
        involved = [names[i] for i in np.argsort(-np.abs(weakest)) if abs(weakest[i]) >= 0.2][:8]
        findings.append(
            Finding(
                "identification",
                WARNING,
                f"weakly identified: condition number {cond:.3g}; the weakest direction involves {', '.join(involved)}",
                {"parameters": involved, "condition_number": cond},
            )
        )
    negative = lam < -FLAT * scale
    if at_estimates and negative.any():
        findings.append(
            Finding(
                "identification",
                WARNING,
                f"minus the Hessian has {int(negative.sum())} negative eigenvalue(s) at the estimates: not a "
                "maximum; restart from other values or use the newton optimizer",
            )
        )
    if not findings:
        findings.append(
            Finding(
                "identification", OK, f"all {len(lam)} curvature directions identified (condition number {cond:.3g})"
            )
        )
    return eigen, findings


# Independent draw sets of the same size for the spread of the simulated log-likelihood; plain Halton is
# deterministic, so its scrambled version stands in for it.
_RANDOMISED = {"halton": "scrambled_halton"}
NOISE_SETS = 5


def simulation_noise(
    model: Model, params: dict[str, float], hessian: np.ndarray | None, at_estimates: bool
) -> tuple[dict, list[Finding]]:
    """Spread of the log-likelihood over independent draw sets, and (at estimates) how far the draws move them.

    At the estimates, one Newton step with another draw set's gradient, -H^-1 g_s, is how far the estimates
    would move with those draws; in standard errors, above 0.5 is a warning (simulation error comparable to
    sampling error: use more draws).
    """
    integ = model.spec.integration
    if integ.type == "gauss_hermite":
        return {"type": "gauss_hermite"}, [Finding("noise", OK, "Gauss-Hermite quadrature: no simulation noise")]
    kind = _RANDOMISED.get(integ.type, integ.type)
    seeds = [integ.seed + 1000 + k for k in range(NOISE_SETS)]
    results = [model.value_and_grad_with_draws(s, params, kind) for s in seeds]
    lls = np.array([r[0] for r in results])
    sd = float(lls.std(ddof=1))
    noise = {"draw_type": kind, "draws": integ.n, "seeds": seeds, "loglikelihoods": lls.tolist(), "sd": sd}
    msg = f"log-likelihood over {NOISE_SETS} independent {kind} draw sets of {integ.n}: sd {sd:.3g}"
    if not at_estimates or hessian is None:
        return noise, [Finding("noise", OK, msg)]
    names = model.parameter_names
    try:
        cov = np.linalg.inv(-hessian)
    except np.linalg.LinAlgError:
        return noise, [Finding("noise", OK, msg + " (Hessian singular: estimate shifts not computed)")]
    se = np.sqrt(np.clip(np.diag(cov), 1e-300, None))
    shifts = np.array([np.abs(cov @ g) / se for _, g in results])
    worst = shifts.max(axis=0)
    noise["max_shift_in_se"] = dict(zip(names, worst.tolist(), strict=True))
    top = int(np.argmax(worst))
    msg += f"; other draws move the estimates by up to {worst[top]:.2g} standard errors ({names[top]})"
    if worst[top] > 0.5:
        return noise, [Finding("noise", WARNING, msg + ": simulation error is not small; increase integration.n")]
    return noise, [Finding("noise", OK, msg)]


# Quadrature with n and with more points disagreeing by more than this many log-likelihood units is a warning.
QUADRATURE_TOLERANCE = 0.1
MAX_QUADRATURE_POINTS = 300  # per dimension, as in gradfit.core.quadrature


def quadrature_check(model: Model, params: dict[str, float]) -> tuple[dict, list[Finding]]:
    """Gauss-Hermite only: the log-likelihood with n points per dimension against 2n (at most 300).

    Quadrature is exact for polynomial integrands and can be far off for steep ones (a latent variable inside
    exp(), near-step choice probabilities), and adding points need not converge smoothly; a user sees that
    only by comparing. The people whose log-likelihood moves most are named.
    """
    integ = model.spec.integration
    if integ.type != "gauss_hermite":
        return {}, []
    more = min(2 * integ.n, MAX_QUADRATURE_POINTS)
    if more == integ.n:
        return {"points": integ.n}, [Finding("quadrature", OK, f"Gauss-Hermite at its maximum of {more} points")]
    spec = model.spec.model_copy(update={"integration": integ.model_copy(update={"n": more})})
    finer = model.variant(spec)
    a, b = model.loglikelihood_per_person(params), finer.loglikelihood_per_person(params)
    diff = float(b.sum() - a.sum())
    order = np.argsort(-np.abs(b - a))[:5]
    people = [{"person": _plain(model.person_ids[i]), "difference": float(b[i] - a[i])} for i in order]
    info = {"points": integ.n, "more_points": more, "loglikelihood": float(a.sum()), "finer": float(b.sum())}
    info["people"] = people
    msg = f"Gauss-Hermite {integ.n} vs {more} points: log-likelihood {a.sum():.4f} vs {b.sum():.4f} ({diff:+.4f})"
    if abs(diff) > QUADRATURE_TOLERANCE or not np.isfinite(diff):
        shown = ", ".join(f"{p['person']} ({p['difference']:+.3g})" for p in people)
        msg += f"; the integral is not converged (most affected people: {shown}); use more points or Monte Carlo"
        return info, [Finding("quadrature", WARNING, msg, info)]
    return info, [Finding("quadrature", OK, msg)]


# A float32/mixed model whose log-likelihood is off from float64's by more than this (LL units), or whose
# gradient is off by more than this share of its largest entry, gets a warning.
PRECISION_LL_TOLERANCE = 0.01
PRECISION_GRADIENT_TOLERANCE = 1e-2


def precision_check(model: Model, params: dict[str, float]) -> tuple[dict, list[Finding]]:
    """float32 / mixed only: the log-likelihood and gradient against the same model in float64, so that a user
    can decide whether single precision is accurate enough (likelihood-ratio tests need the LL to ~0.01)."""
    precision = model.spec.estimation.precision
    if precision == "float64":
        return {}, []
    est = model.spec.estimation.model_copy(update={"precision": "float64"})
    exact = model.variant(model.spec.model_copy(update={"estimation": est}))
    ll, ll64 = model.loglikelihood(params), exact.loglikelihood(params)
    g = np.array(list(model.gradient(params).values()))
    g64 = np.array(list(exact.gradient(params).values()))
    grad_error = float(np.max(np.abs(g - g64)) / max(float(np.max(np.abs(g64))), 1e-300))
    info = {"precision": precision, "loglikelihood": ll, "float64": ll64, "gradient_max_rel_error": grad_error}
    msg = (
        f"{precision} against float64: log-likelihood {ll:.6f} vs {ll64:.6f} ({ll - ll64:+.2g}), gradient "
        f"largest relative difference {grad_error:.2g}"
    )
    if abs(ll - ll64) > PRECISION_LL_TOLERANCE or grad_error > PRECISION_GRADIENT_TOLERANCE:
        msg += "; single precision is not accurate enough here: use estimation.precision: float64"
        return info, [Finding("precision", WARNING, msg, info)]
    return info, [Finding("precision", OK, msg)]


def diagnose(model: Model, params: dict[str, float] | None = None, at: str = "start") -> Diagnosis:
    """Every check at `params` (default: the start values)."""
    params = params or model.start_params
    at_estimates = at != "start"
    findings = list(nonfinite_locator(model, params))
    ll = model.loglikelihood(params)
    finite = findings[0].severity == OK
    grad_rows, eigen, noise, comps = [], {}, {}, []
    if finite:
        grad_rows, f = gradient_check(model, params)
        findings += f
        comps = component_contributions(model, params)
        hessian = model.hessian(params).to_numpy()  # once, for identification and the noise check
        eigen, f = identification(model, params, at_estimates, hessian)
        findings += f
        noise, f = simulation_noise(model, params, hessian if at_estimates else None, at_estimates)
        findings += f
        quad, f = quadrature_check(model, params)
        noise = noise | ({"quadrature": quad} if quad else {})
        findings += f
        prec, f = precision_check(model, params)
        noise = noise | ({"precision": prec} if prec else {})
        findings += f
    return Diagnosis(model.spec.name, at, ll, tuple(findings), grad_rows, comps, eigen, noise)
