"""The ELMo-style biLM (Peters et al. 2018) in JAX: character CNN, highway, projection, two LSTMP stacks.

A token is its characters: embedded, convolved with filters of several widths, max-pooled over the word,
passed through highway layers and projected to `projection` units. Each direction runs `layers` LSTM layers
with a recurrent projection (LSTMP: the cell has `cell` units, its output and recurrent state `projection`
units; cell and output clipped to +-3 as in ELMo), with a residual connection from the second layer on. The
forward stack reads left to right and predicts the next token; the backward stack reads right to left and
predicts the previous one; both share the token encoder and the softmax. Loss: 0.5 x (forward + backward)
mean cross-entropy over the tokens that have a target.

Mixed precision: parameters are float32; with compute bf16 the matrix products and convolutions take bfloat16
operands and accumulate in float32, the LSTM cell state and the softmax stay float32.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

CLIP = 3.0  # ELMo's cell and projection clip


@dataclass(frozen=True)
class Sizes:
    n_chars: int = 261
    max_chars: int = 50
    char_embed: int = 16
    filters: tuple[tuple[int, int], ...] = ((1, 16), (2, 16), (3, 32), (4, 64), (5, 128))  # (width, count)
    highway: int = 1
    projection: int = 64
    cell: int = 256
    layers: int = 2

    @property
    def n_filters(self) -> int:
        return sum(c for _, c in self.filters)


# ELMo "small" (allennlp's elmo_2x1024_128_2048cnn_1xhighway): 2048 filters, 1 highway, LSTM 1024 -> 128
ELMO_SMALL = Sizes(
    filters=((1, 32), (2, 32), (3, 64), (4, 128), (5, 256), (6, 512), (7, 1024)), highway=1, projection=128, cell=1024
)


@dataclass(frozen=True)
class Softmax:
    kind: str = "full"  # "full" or "sampled"
    samples: int = 8192  # sampled softmax: classes drawn per step (log-uniform over the frequency-sorted vocabulary)


@dataclass(frozen=True)
class Setup:
    sizes: Sizes = field(default_factory=Sizes)
    vocab: int = 5000
    softmax: Softmax = field(default_factory=Softmax)
    compute: str = "float32"  # or "bf16"
    remat: bool = False  # recompute the LSTM steps in the backward pass instead of storing them

    @property
    def dtype(self):
        return jnp.bfloat16 if self.compute == "bf16" else jnp.float32


def _dense(key, n_in, n_out, scale=None):
    scale = np.sqrt(1.0 / n_in) if scale is None else scale
    return {"w": jax.random.normal(key, (n_in, n_out), jnp.float32) * scale, "b": jnp.zeros(n_out, jnp.float32)}


def init_params(key: jax.Array, setup: Setup) -> dict:
    s = setup.sizes
    keys = iter(jax.random.split(key, 8 + len(s.filters) + s.highway + 4 * s.layers))
    params = {
        "chars": jax.random.uniform(next(keys), (s.n_chars, s.char_embed), jnp.float32, -1.0, 1.0),
        "conv": [
            {
                "w": jax.random.normal(next(keys), (w, s.char_embed, c), jnp.float32)
                * np.sqrt(1.0 / (w * s.char_embed)),
                "b": jnp.zeros(c, jnp.float32),
            }
            for w, c in s.filters
        ],
        "highway": [],
        "proj": _dense(next(keys), s.n_filters, s.projection),
        "softmax": _dense(next(keys), s.projection, setup.vocab, scale=np.sqrt(1.0 / s.projection)),
    }
    for _ in range(s.highway):
        layer = _dense(next(keys), s.n_filters, 2 * s.n_filters)
        # the gate starts mostly "carry": the highway layer begins close to the identity
        layer["b"] = layer["b"].at[s.n_filters :].set(-2.0)
        params["highway"].append(layer)
    for direction in ("fwd", "bwd"):
        stack = []
        for _ in range(s.layers):
            stack.append(
                {
                    "wx": jax.random.normal(next(keys), (s.projection, 4 * s.cell), jnp.float32)
                    / np.sqrt(s.projection),
                    "wh": jax.random.normal(next(keys), (s.projection, 4 * s.cell), jnp.float32)
                    / np.sqrt(s.projection),
                    # forget gate bias 1: remember by default at the start of training
                    "b": jnp.zeros(4 * s.cell, jnp.float32).at[s.cell : 2 * s.cell].set(1.0),
                    "wp": jax.random.normal(next(keys), (s.cell, s.projection), jnp.float32) / np.sqrt(s.cell),
                }
            )
        params[direction] = stack
    # float32 master weights even when float64 is enabled process-wide (gradfit's ICLV default)
    return jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float32), params)


def _mm(x, w, dtype):
    """x @ w with `dtype` operands and a float32 result."""
    return jnp.matmul(x.astype(dtype), w.astype(dtype), preferred_element_type=jnp.float32)


def token_embeddings(params: dict, chars: jnp.ndarray, setup: Setup) -> jnp.ndarray:
    """(..., max_chars) character ids -> (..., projection) float32 token vectors."""
    dtype = setup.dtype
    lead = chars.shape[:-1]
    x = params["chars"][chars.reshape(-1, chars.shape[-1])].astype(dtype)  # (n, C, E)
    pooled = []
    n_chars = x.shape[1]
    for conv in params["conv"]:
        width = conv["w"].shape[0]
        # the convolution as one matrix product over stacked shifted windows: XLA's CPU backend runs a
        # convolution inside a loop (the training scan) through a slow generic path, a product never
        windows = jnp.concatenate([x[:, k : n_chars - width + 1 + k] for k in range(width)], axis=-1)
        y = _mm(windows, conv["w"].reshape(-1, conv["w"].shape[-1]), dtype)
        pooled.append(jax.nn.relu(jnp.max(y, axis=1) + conv["b"]))
    h = jnp.concatenate(pooled, axis=-1)
    n = h.shape[-1]
    for layer in params["highway"]:
        z = _mm(h, layer["w"], dtype) + layer["b"]
        gate = jax.nn.sigmoid(z[:, n:])
        h = gate * h + (1 - gate) * jax.nn.relu(z[:, :n])
    out = _mm(h, params["proj"]["w"], dtype) + params["proj"]["b"]
    return out.reshape(*lead, -1)


def _lstmp(layer: dict, x: jnp.ndarray, setup: Setup) -> jnp.ndarray:
    """One LSTMP layer over (B, T, P) inputs, left to right: (B, T, P) outputs."""
    dtype = setup.dtype
    cell = setup.sizes.cell
    batch = x.shape[0]
    gates_x = _mm(x, layer["wx"], dtype) + layer["b"]  # every step's input part in one product

    def step(carry, gx):
        h, c = carry
        g = gx + _mm(h, layer["wh"], dtype)
        i, f, u, o = (g[:, k * cell : (k + 1) * cell] for k in range(4))
        c = jnp.clip(jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(u), -CLIP, CLIP)
        h = jnp.clip(_mm(jax.nn.sigmoid(o) * jnp.tanh(c), layer["wp"], dtype), -CLIP, CLIP)
        return (h, c), h

    if setup.remat:
        step = jax.checkpoint(step)
    init = (jnp.zeros((batch, setup.sizes.projection), jnp.float32), jnp.zeros((batch, cell), jnp.float32))
    _, hs = jax.lax.scan(step, init, jnp.swapaxes(gates_x, 0, 1))
    return jnp.swapaxes(hs, 0, 1)


def _stack(layers: list[dict], x: jnp.ndarray, setup: Setup) -> list[jnp.ndarray]:
    """Each layer's outputs; from the second layer on, a residual connection adds the layer's input."""
    outs = []
    for k, layer in enumerate(layers):
        y = _lstmp(layer, x, setup)
        x = y + x if k > 0 else y
        outs.append(x)
    return outs


def layers(
    params: dict, chars: jnp.ndarray, setup: Setup, lengths: jnp.ndarray | None = None
) -> tuple[jnp.ndarray, list, list]:
    """Token vectors (B, T, P) and each layer's forward and backward outputs (lists of (B, T, P)).

    With `lengths` (B,), rows are sequences padded on the right: the backward stack reads each row from its
    own last token, so padding never flows into a real token's state.
    """
    tokens = token_embeddings(params, chars, setup)
    fwd = _stack(params["fwd"], tokens, setup)
    t = jnp.arange(chars.shape[1])
    if lengths is None:
        order = jnp.broadcast_to(t[::-1], chars.shape[:2])
    else:  # reverse the first `length` positions of each row, keep the padding where it is
        order = jnp.where(t[None, :] < lengths[:, None], lengths[:, None] - 1 - t[None, :], t[None, :])

    def flip(x):  # an involution: the same index undoes it
        return jnp.take_along_axis(x, order[:, :, None], axis=1)

    bwd = [flip(y) for y in _stack(params["bwd"], flip(tokens), setup)]
    return tokens, fwd, bwd


def _full_nll(params, h, targets, dtype):
    logits = _mm(h, params["softmax"]["w"], dtype) + params["softmax"]["b"]
    logz = jax.nn.logsumexp(logits, axis=-1)
    return logz - jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]


def _log_uniform(vocab: int) -> jnp.ndarray:
    """log Q(k) of the log-uniform (Zipf) sampler over frequency-sorted ids: Q(k) = log((k+2)/(k+1)) / log(V+1)."""
    k = jnp.arange(vocab, dtype=jnp.float32)
    return jnp.log(jnp.log1p(1.0 / (k + 1.0)) / jnp.log(vocab + 1.0))


def _sampled_nll(params, h, targets, setup, key):
    """Sampled softmax (Jean et al. 2015): the true class against `samples` log-uniform draws, logQ-corrected."""
    s = setup.softmax.samples
    logq = _log_uniform(setup.vocab)
    cand = jax.random.categorical(key, logq, shape=(s,))
    w, b = params["softmax"]["w"], params["softmax"]["b"]
    true_logit = jnp.sum(h * w.T[targets], axis=-1) + b[targets] - (jnp.log(s) + logq[targets])
    samp = _mm(h, w[:, cand], setup.dtype) + b[cand] - (jnp.log(s) + logq[cand])
    samp = jnp.where(cand == targets[..., None], -jnp.inf, samp)  # an accidental hit is not a negative
    logits = jnp.concatenate([true_logit[..., None], samp], axis=-1)
    return jax.nn.logsumexp(logits, axis=-1) - true_logit


def token_nll(params, chars, fwd_targets, bwd_targets, setup: Setup, key=None, sampled: bool = False):
    """(B, T) forward and backward cross-entropies of every position (0 where the target is padding)."""
    _, fwd, bwd = layers(params, chars, setup)
    out = []
    for h, y in ((fwd[-1], fwd_targets), (bwd[-1], bwd_targets)):
        if sampled:
            key, sub = jax.random.split(key)
            nll = _sampled_nll(params, h, y, setup, sub)
        else:
            nll = _full_nll(params, h, y, setup.dtype)
        out.append(jnp.where(y != 0, nll, 0.0))
    return out[0], out[1]


def window_batch(windows: jnp.ndarray, char_table: jnp.ndarray, to_vocab: jnp.ndarray):
    """(B, T + 2) type-id windows -> (chars (B, T, C), forward targets (B, T), backward targets (B, T))."""
    return char_table[windows[:, 1:-1]], to_vocab[windows[:, 2:]], to_vocab[windows[:, :-2]]


def loss_fn(setup: Setup, char_table: jnp.ndarray, to_vocab: jnp.ndarray, train: bool = True):
    """Per-window loss 0.5 x (forward + backward) mean cross-entropy, for `gradfit.train` (batch: windows).

    In training, a sampled softmax when the setup asks for one; in evaluation, always the full softmax.
    """
    sampled = train and setup.softmax.kind == "sampled"

    def loss(params, windows, key):
        chars, yf, yb = window_batch(windows, char_table, to_vocab)
        nf, nb = token_nll(params, chars, yf, yb, setup, key, sampled)
        count_f = jnp.maximum(jnp.sum(yf != 0, axis=1), 1)
        count_b = jnp.maximum(jnp.sum(yb != 0, axis=1), 1)
        return 0.5 * (jnp.sum(nf, axis=1) / count_f + jnp.sum(nb, axis=1) / count_b)

    return loss


@partial(jax.jit, static_argnames=("setup", "k"))
def token_metrics(params, windows, char_table, to_vocab, setup: Setup, k: int = 5):
    """Sums over a batch of windows: cross-entropy, tokens, top-1 and top-k hits (both directions, full softmax)."""
    chars, yf, yb = window_batch(windows, char_table, to_vocab)
    _, fwd, bwd = layers(params, chars, setup)
    out = jnp.zeros(4, jnp.float32)
    for h, y in ((fwd[-1], yf), (bwd[-1], yb)):
        logits = _mm(h, params["softmax"]["w"], setup.dtype) + params["softmax"]["b"]
        nll = jax.nn.logsumexp(logits, axis=-1) - jnp.take_along_axis(logits, y[..., None], axis=-1)[..., 0]
        valid = y != 0
        top = jax.lax.top_k(logits, k)[1]
        hit1 = top[..., 0] == y
        hitk = jnp.any(top == y[..., None], axis=-1)
        out += jnp.stack(
            [jnp.sum(jnp.where(valid, nll, 0)), jnp.sum(valid), jnp.sum(valid & hit1), jnp.sum(valid & hitk)]
        )
    return out
