"""Plain-text rendering of a FitResult (compute lives in results.py; this only formats)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gradfit.estimate.results import FitResult


def _fmt(x) -> str:
    return "—" if x is None else f"{x:.4f}"


def format_summary(res: FitResult) -> str:
    lines = [
        f"Model: {res.model_name}",
        f"Optimizer: {res.optimizer}   converged: {res.converged} ({res.message}), iterations: {res.iterations}",
        f"Individuals: {res.n_individuals}   observations: {res.n_observations}   free parameters: {res.n_parameters}",
        f"Log-likelihood: {res.loglikelihood:.4f}   at start: {res.initial_loglikelihood:.4f}",
    ]
    if res.null_loglikelihood is not None:
        lines.append(
            f"Choice part: null LL {res.null_loglikelihood:.4f}, LL {res.choice_loglikelihood:.4f}, "
            f"rho² {_fmt(res.rho_squared)}, rho-bar² {_fmt(res.rho_squared_bar)}"
        )
    lines.append(f"AIC: {res.aic:.2f}   BIC: {res.bic:.2f}")
    integ = res.settings.get("integration")
    if integ:
        lines.append(f"Integration: {integ}")
    lines.append("Timings (s): " + ", ".join(f"{k.removesuffix('_s')} {v:.3f}" for k, v in res.timings.items()))
    if res.cov.min_eigenvalue <= 0:
        lines.append("WARNING: the Hessian is not negative definite at the estimates: the model may be unidentified")
    est = res.estimates
    width = max(10, *(len(n) for n in res.names)) if res.names else 10
    header = f"{'parameter':<{width}} {'value':>11} {'std err':>10} {'t':>8} {'p':>7} {'rob. se':>10} {'rob. t':>8}"
    lines += ["", header, "-" * len(header)]
    for name, row in est.iterrows():
        lines.append(
            f"{name:<{width}} {row.value:>11.4f} {row.std_err:>10.4f} {row.t_stat:>8.2f} {row.p_value:>7.3f} "
            f"{row.robust_std_err:>10.4f} {row.robust_t_stat:>8.2f}"
        )
    if res.fixed:
        lines += ["", "Fixed: " + ", ".join(f"{k} = {v:g}" for k, v in res.fixed.items())]
    return "\n".join(lines)
