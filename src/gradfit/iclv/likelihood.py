"""The simulated log-likelihood: structural -> (measurement + choice) per draw -> log-mean-exp over draws.

    LL = sum_n log sum_r w_r exp( sum_k log p(I_nk | eta_nr) + sum_t log P(y_nt | eta_nr) )

computed in logs end to end. Its `jax.grad` is exactly the importance-weighted average of per-draw gradients
(weights w_r L_nr / sum_r' w_r' L_nr'), because d log sum_r w_r L_r = sum_r (w_r L_r / sum w L) d log L_r.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

from gradfit.core.logprob import log_mean_exp
from gradfit.iclv.choice import Choice
from gradfit.iclv.measurement import IndicatorGroup
from gradfit.iclv.params import ParamLayout
from gradfit.iclv.structural import Structural


@dataclass(frozen=True)
class Likelihood:
    """Pure functions of (theta, arrays); `arrays` is a pytree holding the data and the draws."""

    layout: ParamLayout
    structural: Structural
    indicators: tuple[IndicatorGroup, ...]
    choice: Choice | None

    def components(self, theta: jnp.ndarray, arrays: dict) -> dict[str, jnp.ndarray]:
        """Per-person, per-draw log-likelihood of each component, (N, R) each (measurement per group)."""
        p = self.layout.expand(theta)
        eta = self.structural(p, arrays["draws"], arrays["structural"])
        out = {f"measurement:{g.key}": g.loglik(p, eta, arrays["measurement"]) for g in self.indicators}
        if self.choice is not None:
            out["choice"] = self.choice.loglik(p, eta, arrays["choice"])
        return out

    def per_draw(self, theta: jnp.ndarray, arrays: dict) -> jnp.ndarray:
        """(N, R) joint log-likelihood of each person's data given each draw."""
        parts = self.components(theta, arrays)
        n = arrays["rows"].shape[0]
        total = jnp.zeros((n, arrays["draws"].shape[1]), theta.dtype)
        for value in parts.values():
            total = total + value
        return total

    def per_person(self, theta: jnp.ndarray, arrays: dict) -> jnp.ndarray:
        """(N,) simulated log-likelihood of each person."""
        return log_mean_exp(self.per_draw(theta, arrays), arrays["log_weights"], axis=1)

    def total(self, theta: jnp.ndarray, arrays: dict) -> jnp.ndarray:
        return self.per_person(theta, arrays).sum()

    def choice_only(self, theta: jnp.ndarray, arrays: dict) -> jnp.ndarray:
        """Marginal log-likelihood of the choices alone (indicators integrated out), for rho-squared."""
        p = self.layout.expand(theta)
        eta = self.structural(p, arrays["draws"], arrays["structural"])
        ll = self.choice.loglik(p, eta, arrays["choice"])
        return log_mean_exp(ll, arrays["log_weights"], axis=1).sum()
