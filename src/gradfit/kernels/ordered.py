"""Person-level ordered-logit indicators as two Pallas kernels: the per-draw log-likelihood, and its reverse pass.

At 10,000 people x 1,000 draws x 30 indicators XLA writes people x draws x indicators arrays (2.4 GB each in
float64) for the indicator means and their partials and reads them back several times: ~19 of the 28.5 ms of a
value+gradient on an H100 (benchmarks/NOTES.md). Here a block of people x draws is computed in registers, one
indicator after another, and the reverse pass recomputes it from eta instead of storing it, reducing over the
indicators (the cotangent of eta) and over the block's draws (per person and indicator sums from which every
parameter's gradient follows) before anything is written.

The kernels run on GPUs (Triton); `interpret=True` runs them anywhere, slowly (tests). A Pallas call has no
forward-mode derivative: the Hessian and per-person scores use the XLA form (`Likelihood.with_kernels`).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from gradfit.kernels._blocks import Block, block_for, padding, pow2_padding

# Per person and indicator: sum of g*d_a, g*d_b, g_mu, (g*d_a + g*d_b) * mu; then, for each latent variable the
# indicator loads on (at most M per indicator), the sum of g_mu * eta: the loadings' gradients. Sums for the
# latent variables an indicator does not load on would be thrown away (5 of the seed model's 9 sums).
SUMS = 4


def _indicator(k, etas, refs):
    """mu, a, b, e_a, e_b and the masks of indicator k on the block, (people, draws) of the block each."""
    icpt_ref, lam_ref, inv_ref, lo_ref, hi_ref, lw_ref, up_ref = refs
    n_lv = len(etas)
    mu = icpt_ref[k] + etas[0] * lam_ref[k * n_lv]
    for lv in range(1, n_lv):
        mu = mu + etas[lv] * lam_ref[k * n_lv + lv]
    inv = inv_ref[k]

    def column(ref):  # (people, 1): a 2-D load broadcasts along the draws without a layout change
        return ref[:, k, :]

    lower, upper = column(lw_ref), column(up_ref)
    a = (column(lo_ref) - mu) * inv
    b = (column(hi_ref) - mu) * inv
    e_a = lower * jnp.exp(-jnp.abs(a))
    e_b = upper * jnp.exp(-jnp.abs(b))
    return mu, a, b, e_a, e_b, lower, upper


def _forward_kernel(n_ind, eta_ref, *refs):
    *refs, out_ref = refs
    etas = [eta_ref[lv] for lv in range(eta_ref.shape[0])]

    def one(k, carry):  # a loop, not unrolled: 30 indicators unrolled took a minute to compile
        linear, product = carry
        _, a, b, e_a, e_b, lower, upper = _indicator(k, etas, refs)
        linear = linear + upper * jnp.maximum(-b, 0.0) + lower * jnp.maximum(a, 0.0)
        return linear, product * ((1.0 + e_a) * (1.0 + e_b))

    # The log terms as one log of a product: each factor (1 + e_a)(1 + e_b) lies in [1, 4], so up to 500
    # indicators multiply without overflow in float64 (4^500 < 1.8e308) and one log replaces K of them.
    zero = jnp.zeros_like(etas[0])
    linear, product = jax.lax.fori_loop(0, n_ind, one, (zero, zero + 1.0))
    out_ref[...] = -(linear + jnp.log(product))


def _backward_kernel(n_ind, n_sel, eta_ref, *refs):
    *refs, sel_ref, g_ref, d_eta_ref, sums_ref = refs
    inv_ref, lam_ref = refs[2], refs[1]
    n_lv = eta_ref.shape[0]
    etas = [eta_ref[lv] for lv in range(n_lv)]
    g = g_ref[...]

    def one(k, d_eta):
        mu, a, b, e_a, e_b, lower, upper = _indicator(k, etas, refs)
        # d/da = -F(a), d/db = F(-b), from exp(-|x|) without overflow
        ga = -lower * jnp.where(a >= 0, 1.0, e_a) / (1.0 + e_a) * g
        gb = upper * jnp.where(b >= 0, e_b, 1.0) / (1.0 + e_b) * g
        g_mu = -(ga + gb) * inv_ref[k]
        parts = [ga, gb, g_mu, (ga + gb) * mu]
        for m in range(n_sel):  # the latent variables indicator k loads on
            lv = sel_ref[k * n_sel + m]
            chosen = etas[0]
            for other in range(1, n_lv):
                chosen = jnp.where(lv == other, etas[other], chosen)
            parts.append(g_mu * chosen)
        for q, part in enumerate(parts):  # per person: summed over the block's draws, (people, 1)
            sums_ref[0, q, :, pl.ds(k, 1)] = jnp.sum(part, axis=1, keepdims=True)
        return tuple(d + g_mu * lam_ref[k * n_lv + lv] for lv, d in enumerate(d_eta))

    d_eta = jax.lax.fori_loop(0, n_ind, one, tuple(jnp.zeros_like(g) for _ in range(n_lv)))
    for lv in range(n_lv):
        d_eta_ref[lv] = d_eta[lv]


def _layout(eta, lo, hi, lower, upper):
    """eta (N, R, L) -> (L, N', R') and the per-person arrays (N, 1, K) -> (N', K'), padded to whole blocks
    (K' a power of two, as Triton wants); padded people, draws and indicators are masked out (mask 0). Also
    the block shape, chosen for (N, R)."""
    n, r, _ = eta.shape
    k = lo.shape[-1]
    blk = block_for(n, r)
    pn, pr, pk = padding(n, blk.people), padding(r, blk.draws), pow2_padding(k)
    eta_t = jnp.pad(jnp.moveaxis(eta, -1, 0), ((0, 0), (0, pn), (0, pr)))

    def person(x):  # (N', K', 1): see _indicator's column()
        return jnp.pad(x.reshape(n, k).astype(eta.dtype), ((0, pn), (0, pk)))[..., None]

    return eta_t, person(lo), person(hi), person(lower), person(upper), (pn, pr), blk


def _specs(n_lv: int, kp: int, params: tuple[int, ...], blk: Block):
    block = (blk.people, blk.draws)
    eta = pl.BlockSpec((n_lv, *block), lambda i, j: (0, i, j))
    whole = [pl.BlockSpec((p,), lambda i, j: (0,)) for p in params]
    person = pl.BlockSpec((blk.people, kp, 1), lambda i, j: (i, 0, 0))
    return eta, whole, person, pl.BlockSpec(block, lambda i, j: (i, j))


@partial(jax.custom_vjp, nondiff_argnums=(8, 9))
def ordered_logit_person(eta, intercept, lam, inv, lo, hi, lower, upper, interpret=False, loads=None):
    """(N, R) per-draw sum over the group's indicators of log P(answer) less its draw-free part, as
    `core.logprob.ordered_loglik` computes it: eta (N, R, L); intercept, inv = 1/sigma (K,); lam (K, L);
    lo, hi the thresholds around each answer and lower, upper its masks (observed and not at an open end),
    (N, 1, K) each. loads: per indicator, the latent variables it loads on (lam is 0 elsewhere, and its
    gradient there is not computed); None: all of them."""
    return _forward(eta, intercept, lam, inv, lo, hi, lower, upper, interpret)


def _selection(loads, n_ind: int, n_lv: int) -> tuple[np.ndarray, np.ndarray]:
    """(K * M,) the latent variable of each indicator's m-th loading (padded with its first), and (M, K, L) the
    0/1 map from those sums back to lam's gradient (0 on the padding)."""
    loads = [tuple(range(n_lv))] * n_ind if loads is None else [tuple(x) or (0,) for x in loads]
    n_sel = max(len(x) for x in loads)
    sel = np.array([[x[min(m, len(x) - 1)] for m in range(n_sel)] for x in loads], dtype=np.int32)
    onehot = np.zeros((n_sel, n_ind, n_lv))
    for k, x in enumerate(loads):
        for m, lv in enumerate(x):
            onehot[m, k, lv] = 1.0
    return sel.reshape(-1), onehot


def _forward(eta, intercept, lam, inv, lo, hi, lower, upper, interpret, keep=False):
    n, r, n_lv = eta.shape
    n_ind = intercept.shape[0]
    laid_out = _layout(eta, lo, hi, lower, upper)
    eta_t, lo_p, hi_p, lw_p, up_p, (pn, pr), blk = laid_out
    kp = lo_p.shape[1]
    eta_spec, whole, person, out = _specs(n_lv, kp, (n_ind, n_ind * n_lv, n_ind), blk)
    grid = (eta_t.shape[1] // blk.people, eta_t.shape[2] // blk.draws)
    ll = pl.pallas_call(
        partial(_forward_kernel, n_ind),
        grid=grid,
        in_specs=[eta_spec, *whole, person, person, person, person],
        out_specs=out,
        out_shape=jax.ShapeDtypeStruct(eta_t.shape[1:], eta.dtype),
        interpret=interpret,
        compiler_params=None if interpret else plgpu.CompilerParams(num_warps=blk.warps),
    )(eta_t, intercept, lam.reshape(-1), inv, lo_p, hi_p, lw_p, up_p)
    return (ll[:n, :r], laid_out) if keep else ll[:n, :r]


def _fwd(eta, intercept, lam, inv, lo, hi, lower, upper, interpret, loads):
    out, laid_out = _forward(eta, intercept, lam, inv, lo, hi, lower, upper, interpret, keep=True)
    return out, (eta.shape, intercept, lam, inv, lo, hi, laid_out)  # the padded arrays, not laid out twice


def _bwd(interpret, loads, res, g):
    (n, r, n_lv), intercept, lam, inv, lo, hi, laid_out = res
    n_ind = intercept.shape[0]
    sel, onehot = _selection(loads, n_ind, n_lv)
    eta_t, lo_p, hi_p, lw_p, up_p, (pn, pr), blk = laid_out
    kp = lo_p.shape[1]
    g_p = jnp.pad(g.astype(eta_t.dtype), ((0, pn), (0, pr)))  # padded draws and people: cotangent 0
    eta_spec, whole, person, blocked = _specs(n_lv, kp, (n_ind, n_ind * n_lv, n_ind), blk)
    grid = (eta_t.shape[1] // blk.people, eta_t.shape[2] // blk.draws)
    n_sel = onehot.shape[0]
    n_sums = SUMS + n_sel
    d_eta_t, sums = pl.pallas_call(
        partial(_backward_kernel, n_ind, n_sel),
        grid=grid,
        in_specs=[eta_spec, *whole, *[person] * 4, pl.BlockSpec((sel.size,), lambda i, j: (0,)), blocked],
        out_specs=[eta_spec, pl.BlockSpec((1, n_sums, blk.people, kp), lambda i, j: (j, 0, i, 0))],
        out_shape=[
            jax.ShapeDtypeStruct(eta_t.shape, eta_t.dtype),
            jax.ShapeDtypeStruct((grid[1], n_sums, eta_t.shape[1], kp), eta_t.dtype),
        ],
        interpret=interpret,
        compiler_params=None if interpret else plgpu.CompilerParams(num_warps=blk.warps),
    )(eta_t, intercept, lam.reshape(-1), inv, lo_p, hi_p, lw_p, up_p, jnp.asarray(sel), g_p)
    d_eta = jnp.moveaxis(d_eta_t[:, :n, :r], 0, -1)
    s = sums.sum(axis=0)[:, :n, :n_ind]  # (sums, N, K): over the draw blocks
    s_a, s_b, s_mu, s_amu, s_eta = s[0], s[1], s[2], s[3], s[SUMS:]
    lo1, hi1 = lo.reshape(n, n_ind), hi.reshape(n, n_ind)
    d_inv = (lo1 * s_a + hi1 * s_b - s_amu).sum(axis=0)  # a = (lo - mu) inv: d/dinv = ga (lo - mu) + gb (hi - mu)
    d_lam = jnp.einsum("mk,mkl->kl", s_eta.sum(axis=1), onehot.astype(s_eta.dtype))  # (K, L)
    d_lo = (s_a * inv).reshape(lo.shape)
    d_hi = (s_b * inv).reshape(hi.shape)
    return d_eta, s_mu.sum(axis=0), d_lam, d_inv, d_lo, d_hi, None, None


ordered_logit_person.defvjp(_fwd, _bwd)
