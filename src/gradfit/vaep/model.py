"""The VAEP classifier: one MLP with two sigmoid heads, P(scores) and P(concedes), in JAX.

Master weights are float32; with precision "bf16" the matrix products run in bfloat16 (inputs, weights and
activations cast down), and the logits, the loss and every optimiser update are float32 — the usual mixed
precision recipe, with no loss scaling needed because bfloat16 has float32's exponent range.

Class imbalance (a goal follows about 1 action in 100): each head's output bias starts at its training base
rate's log-odds, so the first epochs are not spent learning the prior. Optionally positives are up-weighted
(`pos_weight`); a weight w multiplies the fitted odds by w, so predictions subtract log(w) from the logit and
stay calibrated probabilities, which the VAEP formula needs (it subtracts them).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

COMPUTE = {"bf16": jnp.bfloat16, "float32": jnp.float32}


class Scaler(NamedTuple):
    """Feature standardisation fitted on the training rows: x -> (x - mean) / scale."""

    mean: jnp.ndarray
    scale: jnp.ndarray


def fit_scaler(x: jnp.ndarray) -> Scaler:
    mean = jnp.mean(x, axis=0, dtype=jnp.float32)
    std = jnp.std(x, axis=0, dtype=jnp.float32)
    # a constant column (an action type absent from the training games) passes through unscaled
    return Scaler(mean, jnp.where(std > 1e-6, std, 1.0))


@partial(jax.jit, static_argnames=("dtype",))
def standardize(scaler: Scaler, x: jnp.ndarray, dtype=jnp.float32) -> jnp.ndarray:
    return ((x.astype(jnp.float32) - scaler.mean) / scaler.scale).astype(dtype)


def init_params(
    key: jax.Array, n_in: int, hidden: tuple[int, ...], base_rates: np.ndarray, pos_weight=(1.0, 1.0)
) -> dict:
    """He-initialised layers; the output bias at the base rates' weighted log-odds (see the module docstring)."""
    sizes = (n_in, *hidden)
    keys = jax.random.split(key, len(sizes))
    layers = []
    for k, (a, b) in zip(keys, zip(sizes[:-1], sizes[1:], strict=True), strict=False):
        layers.append({"w": jax.random.normal(k, (a, b), jnp.float32) * np.sqrt(2.0 / a), "b": jnp.zeros(b)})
    rates = np.clip(np.asarray(base_rates, float), 1e-6, 1 - 1e-6)
    out = {
        "w": jax.random.normal(keys[-1], (sizes[-1], 2), jnp.float32) * np.sqrt(1.0 / sizes[-1]) * 0.1,
        # weighted positives multiply the optimum's odds by w: start there
        "b": jnp.asarray(np.log(rates / (1 - rates)) + np.log(np.asarray(pos_weight, float)), jnp.float32),
    }
    # float32 master weights even when float64 is enabled process-wide (gradfit's ICLV default), where a numpy
    # scale or jnp.zeros would otherwise promote them to float64
    return jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float32), {"hidden": layers, "out": out})


def logits(params: dict, x: jnp.ndarray, compute=jnp.bfloat16) -> jnp.ndarray:
    """(batch, 2) float32 logits of (scores, concedes) from standardised features."""
    h = x.astype(compute)
    for layer in params["hidden"]:
        h = jax.nn.relu(h @ layer["w"].astype(compute) + layer["b"].astype(compute))
    return (h @ params["out"]["w"].astype(compute)).astype(jnp.float32) + params["out"]["b"]


def loss_fn(compute, pos_weight: tuple[float, float] = (1.0, 1.0), corrected: bool = False):
    """Per-example loss: the sum over the two heads of the binary cross-entropy.

    For training, positives weigh `pos_weight`. With `corrected`, the plain (unweighted) cross-entropy of the
    corrected probabilities, sigmoid(z - log w): what the model predicts, so what validation must score.
    """
    w = jnp.asarray(pos_weight, jnp.float32)
    shift = jnp.log(w)

    def loss(params, batch, key):
        del key  # no dropout: the loss is deterministic
        x, y = batch
        z = logits(params, x, compute)
        y = y.astype(jnp.float32)
        if corrected:
            z = z - shift
            return jnp.sum(-(y * jax.nn.log_sigmoid(z) + (1 - y) * jax.nn.log_sigmoid(-z)), axis=1)
        # -[w y log s(z) + (1 - y) log(1 - s(z))], written with log_sigmoid for stability at large |z|
        nll = -(w * y * jax.nn.log_sigmoid(z) + (1 - y) * jax.nn.log_sigmoid(-z))
        return jnp.sum(nll, axis=1)

    return loss


@partial(jax.jit, static_argnames=("compute", "batch_size"))
def predict(
    params: dict, x: jnp.ndarray, pos_weight: jnp.ndarray, compute=jnp.bfloat16, batch_size: int = 65536
) -> jnp.ndarray:
    """(n, 2) float32 probabilities, corrected for the positive weights, computed batch by batch."""
    n = x.shape[0]
    steps = -(-n // batch_size)
    padded = jnp.pad(x, ((0, steps * batch_size - n), (0, 0)))
    z = jax.lax.map(lambda b: logits(params, b, compute), padded.reshape(steps, batch_size, -1))
    z = z.reshape(steps * batch_size, 2)[:n] - jnp.log(pos_weight)
    return jax.nn.sigmoid(z)
