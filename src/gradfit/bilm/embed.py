"""Contextual token embeddings from a trained biLM: ELMo's three layers per token, and their scalar mix.

Each sentence (`<s> w1 ... wn </s>`) is run on its own, as ELMo does: no state crosses sentences. Layer 0 is
the character-derived token vector, repeated for both directions; layers 1 and 2 are the forward and backward
LSTM outputs side by side, so every layer has 2 x projection units. The scalar mix is gamma x sum_j s_j x
layer_j with s = softmax(w): ELMo learns w and gamma with each downstream task, so gradfit saves the mix with
equal weights (w = 0, gamma = 1: the mean of the layers) and the layers themselves, from which any other mix
follows.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from gradfit.bilm.model import Setup, layers


@partial(jax.jit, static_argnames=("setup",))
def _embed_batch(params, chars, lengths, setup: Setup):
    tokens, fwd, bwd = layers(params, chars, setup, lengths)
    stacked = [jnp.concatenate([tokens, tokens], axis=-1)]
    stacked += [jnp.concatenate([f, b], axis=-1) for f, b in zip(fwd, bwd, strict=True)]
    return jnp.stack(stacked, axis=2)  # (B, T, layers + 1, 2P)


def embed_sentences(
    params, setup: Setup, chars: np.ndarray, offsets: np.ndarray, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(layers (n_rows, L + 1, 2P), mix (n_rows, 2P), mix weights [s_0 .. s_L, gamma]) for the rows of `encode`."""
    lengths = np.diff(offsets)
    n_layers = setup.sizes.layers + 1
    out = np.zeros((chars.shape[0], n_layers, 2 * setup.sizes.projection), np.float32)
    order = np.argsort(lengths, kind="stable")  # similar lengths together: little padding
    for start in range(0, len(order), batch_size):
        group = order[start : start + batch_size]
        width = int(lengths[group].max())
        width = 1 << (width - 1).bit_length()  # a few padded widths, so a few compilations
        batch = np.zeros((len(group), width, chars.shape[1]), np.int32)
        for row, s in enumerate(group):
            batch[row, : lengths[s]] = chars[offsets[s] : offsets[s + 1]]
        result = np.asarray(_embed_batch(params, jnp.asarray(batch), jnp.asarray(lengths[group]), setup))
        for row, s in enumerate(group):
            out[offsets[s] : offsets[s + 1]] = result[row, : lengths[s]]
    weights = np.r_[np.full(n_layers, 1.0 / n_layers), 1.0].astype(np.float32)
    return out, np.einsum("nld,l->nd", out, weights[:-1]) * weights[-1], weights
