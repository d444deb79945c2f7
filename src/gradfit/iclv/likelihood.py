"""The simulated log-likelihood: structural -> (measurement + choice) per draw -> log-mean-exp over draws.

    LL = sum_n log sum_r w_r exp( sum_k log p(I_nk | eta_nr) + sum_t log P(y_nt | eta_nr) )

computed in logs end to end. Its `jax.grad` is exactly the importance-weighted average of per-draw gradients
(weights w_r L_nr / sum_r' w_r' L_nr'), because d log sum_r w_r L_r = sum_r (w_r L_r / sum w L) d log L_r.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
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

    remat: bool = False  # see `components`; build() turns it on for large problems

    def _values_and_latent(self, theta: jnp.ndarray, arrays: dict):
        v = self.layout.expand(theta, arrays["coef_consts"])
        return v, self.structural(v, arrays["draws"], arrays["structural"])

    def latent(self, theta: jnp.ndarray, arrays: dict) -> jnp.ndarray:
        """The latent variables at every draw, (N, R, L)."""
        return self._values_and_latent(theta, arrays)[1]

    def components(self, theta: jnp.ndarray, arrays: dict) -> dict[str, jnp.ndarray]:
        """Per-person, per-draw log-likelihood of each component, (N, R) each (measurement per group)."""
        v, eta = self._values_and_latent(theta, arrays)
        # Rematerialise each component in the backward pass: its elementwise work (people x draws x indicators
        # or x rows x alternatives) is recomputed from eta instead of stored. Storing it would write and re-read
        # several arrays of that size; recomputing costs a few transcendental functions per element, which is
        # cheaper once those arrays are large (H100, 2,000 people x 1,000 draws: 13.2 -> 9.2 ms), while at the
        # seed's size the extra kernels cost more than they save (0.44 -> 0.49 ms); see benchmarks/RESULTS.md.
        wrap = jax.checkpoint if self.remat else (lambda f: f)
        out = {f"measurement:{g.key}": wrap(g.loglik)(v, eta, arrays["measurement"]) for g in self.indicators}
        if self.choice is not None:
            out["choice"] = wrap(self.choice.loglik)(v, eta, arrays["choice"])
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
        return jnp.dot(self.per_person(theta, arrays), arrays["person_weight"])

    def choice_only(self, theta: jnp.ndarray, arrays: dict) -> jnp.ndarray:
        """Marginal log-likelihood of the choices alone (indicators integrated out), for rho-squared."""
        v, eta = self._values_and_latent(theta, arrays)
        ll = self.choice.loglik(v, eta, arrays["choice"])
        return jnp.dot(log_mean_exp(ll, arrays["log_weights"], axis=1), arrays["person_weight"])
