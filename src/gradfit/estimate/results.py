"""The results record of a fit: raw numbers, plus statistics derived from them as properties."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import ndtr

from gradfit.estimate.inference import Covariances
from gradfit.estimate.optimize import Iterate


@dataclass(frozen=True)
class FitResult:
    model_name: str
    names: tuple[str, ...]
    theta: np.ndarray
    gradient: np.ndarray
    hessian: np.ndarray
    cov: Covariances
    loglikelihood: float
    initial_loglikelihood: float
    null_loglikelihood: float | None  # choice part, equal shares among available alternatives
    choice_loglikelihood: float | None  # choices alone at the estimates (indicators integrated out)
    n_observations: int  # rows
    n_individuals: int
    converged: bool
    iterations: int
    message: str
    optimizer: str
    history: tuple[Iterate, ...]
    timings: dict[str, float]
    fixed: dict[str, float] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)  # integration, precision, device, versions

    @property
    def n_parameters(self) -> int:
        return len(self.names)

    @property
    def params(self) -> dict[str, float]:
        return dict(zip(self.names, map(float, self.theta), strict=True))

    @property
    def aic(self) -> float:
        return 2 * self.n_parameters - 2 * self.loglikelihood

    @property
    def bic(self) -> float:
        return self.n_parameters * np.log(self.n_observations) - 2 * self.loglikelihood

    @property
    def rho_squared(self) -> float | None:
        """1 - LL_choice / LL_null for the choice part (indicators integrated out)."""
        if self.null_loglikelihood is None or self.choice_loglikelihood is None:
            return None
        return 1.0 - self.choice_loglikelihood / self.null_loglikelihood

    @property
    def rho_squared_bar(self) -> float | None:
        if self.rho_squared is None:
            return None
        return 1.0 - (self.choice_loglikelihood - self.n_parameters) / self.null_loglikelihood

    @property
    def estimates(self) -> pd.DataFrame:
        se = np.sqrt(np.diag(self.cov.hessian))
        rse = np.sqrt(np.diag(self.cov.robust))
        bse = np.sqrt(np.diag(self.cov.bhhh))

        def p(t):
            return 2.0 * ndtr(-np.abs(t))

        t, rt = self.theta / se, self.theta / rse
        return pd.DataFrame(
            {
                "value": self.theta,
                "std_err": se,
                "t_stat": t,
                "p_value": p(t),
                "robust_std_err": rse,
                "robust_t_stat": rt,
                "robust_p_value": p(rt),
                "bhhh_std_err": bse,
            },
            index=pd.Index(self.names, name="parameter"),
        )

    def summary(self) -> str:
        from gradfit.estimate.summary import format_summary

        return format_summary(self)
