"""The panel logit's denominators as two Pallas kernels: sum over a person's rows of log sum_j b_nrj a_ntj.

`iclv.choice` factors exp(utility) into a latent part b (people x draws x alternatives) and a data part a
(people x rows x alternatives), so the people x draws x rows denominators are small products that XLA writes
out as (N, R, T) arrays, forward and again in the reverse pass (1.44 GB each at 10,000 x 1,000 x 18 in
float64). Here a block of people x draws computes them row by row in registers; the reverse pass recomputes
them and reduces at once: over the rows for b's cotangent, over the block's draws for a's.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from gradfit.kernels._blocks import Block, block_for, padding, pow2_padding


def _row(t, bs, a_ref, mask_ref):
    """The block's denominators of row t, (people, draws) of the block, the row's a (people, 1) per
    alternative and its mask; a padding row gets denominator 1 (log 0 = 0 contribution)."""
    mask = mask_ref[:, t, :]
    a = [a_ref[j, :, t, :] for j in range(len(bs))]
    s = bs[0] * a[0]
    for j in range(1, len(bs)):
        s = s + bs[j] * a[j]
    return jnp.where(mask > 0, s, 1.0), a, mask


def _forward_kernel(n_rows, b_ref, a_ref, mask_ref, out_ref):
    bs = [b_ref[j] for j in range(b_ref.shape[0])]

    def one(t, total):
        s, _, _ = _row(t, bs, a_ref, mask_ref)
        return total + jnp.log(s)

    out_ref[...] = jax.lax.fori_loop(0, n_rows, one, jnp.zeros_like(bs[0]))


def _backward_kernel(n_rows, b_ref, a_ref, mask_ref, g_ref, d_b_ref, d_a_ref):
    n_alt = b_ref.shape[0]
    bs = [b_ref[j] for j in range(n_alt)]
    g = g_ref[...]

    def one(t, d_b):
        s, a, mask = _row(t, bs, a_ref, mask_ref)
        w = mask * g / s  # d/ds of g * log s
        for j in range(n_alt):  # a's cotangent, per person: summed over the block's draws
            d_a_ref[0, j, :, pl.ds(t, 1)] = jnp.sum(w * bs[j], axis=1, keepdims=True)
        return tuple(d + w * a[j] for j, d in enumerate(d_b))

    d_b = jax.lax.fori_loop(0, n_rows, one, tuple(jnp.zeros_like(g) for _ in range(n_alt)))
    for j in range(n_alt):
        d_b_ref[j] = d_b[j]


def _layout(b, a, mask):
    """b (N, R, J) -> (J, N', R'); a (N, T, J) -> (J, N', T', 1); mask (N, T) -> (N', T', 1) as numbers; and
    the block shape, chosen for (N, R)."""
    n, r, _ = b.shape
    t = a.shape[1]
    blk = block_for(n, r)
    pn, pr, pt = padding(n, blk.people), padding(r, blk.draws), pow2_padding(t)
    # padded draws get b = 1, not 0: their denominators must stay positive (their cotangent is 0, and 0 / 0
    # would be NaN in the sums over the block's draws)
    b_t = jnp.pad(jnp.moveaxis(b, -1, 0), ((0, 0), (0, pn), (0, pr)), constant_values=1.0)
    a_t = jnp.pad(jnp.moveaxis(a, -1, 0), ((0, 0), (0, pn), (0, pt)))[..., None]
    m = jnp.pad(mask.astype(b.dtype), ((0, pn), (0, pt)))[..., None]
    return b_t, a_t, m, (pn, pr), blk


def _specs(n_alt: int, tp: int, blk: Block):
    block = (blk.people, blk.draws)
    b = pl.BlockSpec((n_alt, *block), lambda i, k: (0, i, k))
    a = pl.BlockSpec((n_alt, blk.people, tp, 1), lambda i, k: (0, i, 0, 0))
    mask = pl.BlockSpec((blk.people, tp, 1), lambda i, k: (i, 0, 0))
    return b, a, mask, pl.BlockSpec(block, lambda i, k: (i, k))


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def log_denominators(b, a, mask, interpret=False):
    """(N, R): sum over rows t with mask of log sum_j b[n, r, j] a[n, t, j]; b (N, R, J) and a (N, T, J)
    positive where they matter (unavailable alternatives have a = 0), mask (N, T) the person's real rows."""
    return _forward(b, a, mask, interpret)[0]


def _forward(b, a, mask, interpret):
    n, r, n_alt = b.shape
    laid_out = _layout(b, a, mask)
    b_t, a_t, m, _, blk = laid_out
    b_spec, a_spec, m_spec, out = _specs(n_alt, a_t.shape[2], blk)
    out = pl.pallas_call(
        partial(_forward_kernel, a.shape[1]),
        grid=(b_t.shape[1] // blk.people, b_t.shape[2] // blk.draws),
        in_specs=[b_spec, a_spec, m_spec],
        out_specs=out,
        out_shape=jax.ShapeDtypeStruct(b_t.shape[1:], b.dtype),
        interpret=interpret,
        compiler_params=None if interpret else plgpu.CompilerParams(num_warps=blk.warps),
    )(b_t, a_t, m)
    return out[:n, :r], laid_out


def _fwd(b, a, mask, interpret):
    out, laid_out = _forward(b, a, mask, interpret)
    return out, (b.shape, a.shape, laid_out)


def _bwd(interpret, res, g):
    (n, r, n_alt), (_, n_rows, _), (b_t, a_t, m, (pn, pr), blk) = res
    g_p = jnp.pad(g.astype(b_t.dtype), ((0, pn), (0, pr)))
    b_spec, a_spec, m_spec, blocked = _specs(n_alt, a_t.shape[2], blk)
    grid = (b_t.shape[1] // blk.people, b_t.shape[2] // blk.draws)
    d_b_t, d_a = pl.pallas_call(
        partial(_backward_kernel, n_rows),
        grid=grid,
        in_specs=[b_spec, a_spec, m_spec, blocked],
        out_specs=[b_spec, pl.BlockSpec((1, n_alt, blk.people, a_t.shape[2]), lambda i, k: (k, 0, i, 0))],
        out_shape=[
            jax.ShapeDtypeStruct(b_t.shape, b_t.dtype),
            jax.ShapeDtypeStruct((grid[1], n_alt, b_t.shape[1], a_t.shape[2]), b_t.dtype),
        ],
        interpret=interpret,
        compiler_params=None if interpret else plgpu.CompilerParams(num_warps=blk.warps),
    )(b_t, a_t, m, g_p)
    d_b = jnp.moveaxis(d_b_t[:, :n, :r], 0, -1)
    d_a = jnp.moveaxis(d_a.sum(axis=0)[:, :n, :n_rows], 0, -1)  # (N, T, J)
    return d_b, d_a, None


log_denominators.defvjp(_fwd, _bwd)
