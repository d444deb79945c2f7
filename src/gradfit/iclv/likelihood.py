"""The simulated log-likelihood: structural -> (measurement + choice) per draw -> log-mean-exp over draws.

    LL = sum_n log sum_r w_r exp( sum_k log p(I_nk | eta_nr) + sum_t log P(y_nt | eta_nr) )

computed in logs end to end. Its `jax.grad` is exactly the importance-weighted average of per-draw gradients
(weights w_r L_nr / sum_r' w_r' L_nr'), because d log sum_r w_r L_r = sum_r (w_r L_r / sum w L) d log L_r.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp

from gradfit.core.logprob import log_mean_exp
from gradfit.iclv.choice import Choice
from gradfit.iclv.measurement import IndicatorGroup
from gradfit.iclv.params import ParamLayout
from gradfit.iclv.structural import Structural
from gradfit.kernels import kernels_enabled

# The kernel sums the log terms of a person's indicators as one log of a product of factors in [1, 4]: at most
# 500 of them stay finite in float64 (gradfit.kernels.ordered).
MAX_KERNEL_INDICATORS = 500


@dataclass(frozen=True)
class Likelihood:
    """Pure functions of (theta, arrays); `arrays` is a pytree holding the data and the draws."""

    layout: ParamLayout
    structural: Structural
    indicators: tuple[IndicatorGroup, ...]
    choice: Choice | None

    remat: bool = False  # see `components`; build() turns it on for large problems
    # draws(key, person_index, dtype) -> (N, R, L): regenerates the draws where they are not stored (arrays
    # then hold "draw_seed" and "person_index" instead of "draws"); see gradfit.core.generated_draws.
    draws: Callable | None = None

    def for_device(self, platform: str, work_dtype) -> Likelihood:
        """The same likelihood with its products written the way that is fastest where it runs.

        Measured (benchmarks/fusion_ab.py, ab_seed.py, RESULTS.md): on a GPU the panel-logit denominators and
        the draws' product with the Cholesky factor as broadcast products, and in float32 work also the ordered
        indicators' means; on a CPU matrix products throughout
        (XLA's CPU backend runs the broadcast forms' reverse passes several times slower).
        """
        if platform != "gpu":
            return self
        single = jnp.dtype(work_dtype) == jnp.float32
        groups = tuple(replace(g, fused=single) for g in self.indicators)
        choice = None if self.choice is None else replace(self.choice, fused=True)
        return replace(self, structural=replace(self.structural, fused=True), indicators=groups, choice=choice)

    def with_kernels(self, platform: str, work_dtype) -> Likelihood:
        """The same likelihood with the Pallas kernels (gradfit.kernels) where they apply: GPUs, float64
        work, person-level ordered-logit groups of at most MAX_KERNEL_INDICATORS indicators, and the panel
        logit's denominators where utilities are linear in the latent variables (the factored form). On several
        GPUs each runs them on its own people (Placement.sum_over_people). For the value and gradient only: a
        Pallas call has no forward-mode derivative (the Hessian) and the per-person scores map over people one
        at a time; both keep the XLA form. On an H100 at 10,000 people x 1,000 draws the kernels take the seed
        model's value+gradient from 28.6 to 12.1 ms (RESULTS.md). GRADFIT_KERNELS=0 in the environment turns
        them off."""
        if platform != "gpu" or jnp.dtype(work_dtype) != jnp.float64 or not kernels_enabled():
            return self
        groups = tuple(
            replace(g, kernel="gpu")
            if g.kind == "ordered_logit" and g.person_level and len(g.names) <= MAX_KERNEL_INDICATORS
            else g
            for g in self.indicators
        )
        choice = self.choice
        if choice is not None and all(r is None for r in choice.rest):  # the factored form (Choice.loglik)
            choice = replace(choice, kernel="gpu")
        return replace(self, indicators=groups, choice=choice)

    def _values_and_latent(self, theta: jnp.ndarray, arrays: dict):
        # The per-draw work runs in the arrays' precision; with float64 parameters and float32 arrays
        # (precision 'mixed') everything from each person's integral over the draws on stays float64.
        v = self.layout.expand(theta.astype(arrays["coef_consts"].dtype), arrays["coef_consts"])
        if self.draws is None:
            z = arrays["draws"]
        else:
            z = self.draws(arrays["draw_seed"], arrays["person_index"], arrays["coef_consts"].dtype)
        return v, self.structural(v, z, arrays["structural"])

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
        def wrap(part):  # a Pallas kernel recomputes in its own reverse pass: rematerialising it runs it twice
            return jax.checkpoint(part.loglik) if self.remat and not part.kernel else part.loglik

        # The choice model is traced first, and XLA then schedules its kernels first: on an H100 the seed
        # model's value+gradient is 1.5-3 % faster so (benchmarks/ab_seed.py, RESULTS.md). The components
        # keep their order in the result, and so the sum's.
        choice = None if self.choice is None else wrap(self.choice)(v, eta, arrays["choice"])
        out = {f"measurement:{g.key}": wrap(g)(v, eta, arrays["measurement"]) for g in self.indicators}
        if choice is not None:
            out["choice"] = choice
        return out

    def per_draw(self, theta: jnp.ndarray, arrays: dict) -> jnp.ndarray:
        """(N, R) joint log-likelihood of each person's data given each draw."""
        parts = list(self.components(theta, arrays).values())
        total = parts[0]
        for value in parts[1:]:
            total = total + value
        return jnp.broadcast_to(total, (arrays["rows"].shape[0], arrays["log_weights"].shape[0]))

    def posterior_latent(self, theta: jnp.ndarray, arrays: dict) -> jnp.ndarray:
        """(N, L, 2): each person's posterior mean and standard deviation of each latent variable.

        The posterior given the person's indicators and choices, simulated with the draws the likelihood uses:
        draw r weighs w_r L_nr / sum_r' w_r' L_nr' (the weights of the gradient, see the module docstring).
        """
        eta = self.latent(theta, arrays).astype(theta.dtype)
        log_w = self.per_draw(theta, arrays).astype(theta.dtype) + arrays["log_weights"].astype(theta.dtype)
        w = jax.nn.softmax(log_w, axis=1)[:, :, None]
        mean = jnp.sum(w * eta, axis=1)
        var = jnp.maximum(jnp.sum(w * jnp.square(eta - mean[:, None, :]), axis=1), 0.0)
        return jnp.stack([mean, jnp.sqrt(var)], axis=-1)

    def _draw_weights(self, arrays: dict, dtype) -> jnp.ndarray:
        w = jnp.exp(arrays["log_weights"].astype(dtype))
        return w / w.sum()

    def choice_probabilities(self, theta: jnp.ndarray, arrays: dict) -> jnp.ndarray:
        """(N, T, J) simulated probability of every alternative on every row: the logit probabilities averaged
        over the draws of the latent variables from their structural equations (not conditioned on the
        person's indicators or choices: what the model predicts for a person it has not observed)."""
        v, eta = self._values_and_latent(theta, arrays)
        p = self.choice.probabilities(v, eta, arrays["choice"]).astype(theta.dtype)
        return jnp.einsum("r,nrtj->ntj", self._draw_weights(arrays, theta.dtype), p)

    def indicator_probabilities(self, theta: jnp.ndarray, arrays: dict) -> dict[str, jnp.ndarray]:
        """Per discrete indicator group, (N, K, C) simulated probability of each response level, averaged over
        the structural draws (unconditional, as `choice_probabilities`)."""
        v, eta = self._values_and_latent(theta, arrays)
        w = self._draw_weights(arrays, theta.dtype)
        out = {}
        for g in self.indicators:
            p = g.level_probabilities(v, eta)
            if p is not None:
                out[g.key] = jnp.einsum("r,nrkc->nkc", w, p.astype(theta.dtype))
        return out

    def per_person(self, theta: jnp.ndarray, arrays: dict) -> jnp.ndarray:
        """(N,) simulated log-likelihood of each person, in theta's precision."""
        return log_mean_exp(self.per_draw(theta, arrays).astype(theta.dtype), arrays["log_weights"], axis=1)

    def total(self, theta: jnp.ndarray, arrays: dict) -> jnp.ndarray:
        return jnp.dot(self.per_person(theta, arrays), arrays["person_weight"])

    def choice_only(self, theta: jnp.ndarray, arrays: dict) -> jnp.ndarray:
        """Marginal log-likelihood of the choices alone (indicators integrated out), for rho-squared."""
        v, eta = self._values_and_latent(theta, arrays)
        ll = self.choice.loglik(v, eta, arrays["choice"]).astype(theta.dtype)
        return jnp.dot(log_mean_exp(ll, arrays["log_weights"], axis=1), arrays["person_weight"])
