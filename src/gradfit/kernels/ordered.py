"""Person-level ordered-logit indicators as two Pallas kernels: the per-draw log-likelihood, and its reverse pass.

At 10,000 people x 1,000 draws x 30 indicators XLA writes people x draws x indicators arrays (2.4 GB each in
float64) for the indicator means and their partials and reads them back several times: ~19 of the 28.5 ms of a
value+gradient on an H100 (benchmarks/NOTES.md). Here a block of people x draws is computed in registers, one
indicator after another, and the reverse pass recomputes it from eta instead of storing it, reducing over the
indicators (the cotangent of eta) and over the block's draws (per person and indicator sums from which every
parameter's gradient follows) before anything is written.

Where every indicator loads on one latent variable, the kernels loop over each variable's indicators in turn
(`_groups`); where the blocks alone are few (the seed model's 1,304), each block's indicators are split between
several programs (`_blocks.parts_for`), whose partial sums XLA adds: a program's loop is a chain of dependent
loads and float64 functions, and more, shorter chains keep the GPU busier (H100, value+gradient against one
loop over all indicators: seed size 0.95-0.97 of the time, 2,000 x 500 0.95; benchmarks/RESULTS.md). The
kernels see each indicator through scaled thresholds and loadings (`ordered_logit_person`): two loads and a
loading per indicator and draw instead of seven, and no masks (2,000 x 500: another 0.976).

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

from gradfit.kernels._blocks import Block, block_for, cuts, each_part, padding, parts_for, pow2_padding

# Per person and indicator: the sums over draws of ga and gb (the cotangents of a and b); then, for each latent
# variable the indicator loads on (at most M per indicator), the sum of (ga + gb) * eta: the scaled loadings'
# gradients. Sums for the latent variables an indicator does not load on would be thrown away.
SUMS = 2
# A threshold that is not there (an open end, or no answer): a and b at -/+ this put exp(-|a|) at 0 and drop
# the term, so the kernels need no masks; far from what any threshold or mean reaches in float64.
FAR = 1e200


def _indicator(k, etas, refs, lv=None):
    """a, b, e_a, e_b of indicator k on the block, (people, draws) of the block each:
    a = lo' - lam' . eta, b = hi' - lam' . eta with the scaled thresholds and loadings (`ordered_logit_person`).
    lv: the one latent variable k loads on, where that is known when the kernel is traced (`_groups`)."""
    lam_ref, lo_ref, hi_ref = refs
    n_lv = len(etas)
    if lv is None:
        m = etas[0] * lam_ref[k * n_lv]
        for other in range(1, n_lv):
            m = m + etas[other] * lam_ref[k * n_lv + other]
    else:
        m = etas[lv] * lam_ref[k * n_lv + lv]
    a = lo_ref[:, k, :] - m  # (people, 1) columns: a 2-D load broadcasts along the draws without a layout change
    b = hi_ref[:, k, :] - m
    return a, b, jnp.exp(-jnp.abs(a)), jnp.exp(-jnp.abs(b))


def _groups(loads, n_ind: int) -> tuple[np.ndarray, tuple[tuple[int | None, int, int], ...]]:
    """The order in which the kernels visit the indicators, and segments (lv, start, stop) of that order.

    Where every indicator loads on exactly one latent variable, the indicators sorted by it, one segment per
    latent variable: the kernels loop over each variable's indicators with that variable fixed (one
    multiply-add for the mean instead of L). Otherwise (cross-loadings, or loads unknown) the spec's order, one
    segment with lv None."""
    if loads is None or any(len(x) != 1 for x in loads):
        return np.arange(n_ind, dtype=np.int32), ((None, 0, n_ind),)
    order = sorted(range(n_ind), key=lambda k: loads[k][0])
    segments, start = [], 0
    for lv in sorted({x[0] for x in loads}):
        stop = start + sum(1 for x in loads if x[0] == lv)
        segments.append((lv, start, stop))
        start = stop
    return np.asarray(order, dtype=np.int32), tuple(segments)


def _plan(loads, n_ind: int, n_parts: int):
    """(order, parts): the visiting order (`_groups`) cut into n_parts nearly equal runs, each run as the
    segments it covers; program p along the grid's last axis takes part p."""
    order, segments = _groups(loads, n_ind)
    parts = tuple(
        tuple((lv, max(s, lo), min(e, hi)) for lv, s, e in segments if max(s, lo) < min(e, hi))
        for lo, hi in cuts(n_ind, n_parts)
    )
    # the spec's order needs no array (XLA would make a kernel of it: an iota)
    return (None if (order == np.arange(n_ind)).all() else jnp.asarray(order)), parts


def _loop(segments, order_ref, body, carry):
    """carry after body(k, lv, carry) for every indicator k of the segments, in order (order_ref None: the
    spec's)."""
    for lv, start, stop in segments:
        carry = jax.lax.fori_loop(
            start, stop, lambda i, c, lv=lv: body(i if order_ref is None else order_ref[i], lv, c), carry
        )
    return carry


def _forward_kernel(parts, has_order, eta_ref, *refs):
    *refs, out_ref = refs
    refs, order_ref = (refs[:-1], refs[-1]) if has_order else (refs, None)
    etas = [eta_ref[lv] for lv in range(eta_ref.shape[0])]

    def one(k, lv, carry):  # a loop, not unrolled: 30 indicators unrolled took a minute to compile
        linear, product = carry
        a, b, e_a, e_b = _indicator(k, etas, refs, lv)
        linear = linear + jnp.maximum(-b, 0.0) + jnp.maximum(a, 0.0)
        return linear, product * ((1.0 + e_a) * (1.0 + e_b))

    def run(segments):
        # The log terms as one log of a product: each factor (1 + e_a)(1 + e_b) lies in [1, 4], so up to 500
        # indicators multiply without overflow in float64 (4^500 < 1.8e308) and one log replaces K of them.
        zero = jnp.zeros_like(etas[0])
        linear, product = _loop(segments, order_ref, one, (zero, zero + 1.0))
        out_ref[0] = -(linear + jnp.log(product))

    each_part(parts, run)


def _backward_kernel(n_sel, parts, has_order, eta_ref, *refs):
    *refs, sel_ref, g_ref, d_eta_ref, sums_ref = refs
    refs, order_ref = (refs[:-1], refs[-1]) if has_order else (refs, None)
    lam_ref = refs[0]
    n_lv = eta_ref.shape[0]
    etas = [eta_ref[lv] for lv in range(n_lv)]
    g = g_ref[...]

    def one(k, lv, d_eta):
        a, b, e_a, e_b = _indicator(k, etas, refs, lv)
        # d/da = -F(a), d/db = F(-b), from exp(-|x|) without overflow; one division for both
        w = g / ((1.0 + e_a) * (1.0 + e_b))
        ga = -jnp.where(a >= 0, 1.0, e_a) * (1.0 + e_b) * w
        gb = jnp.where(b >= 0, e_b, 1.0) * (1.0 + e_a) * w
        gab = ga + gb  # minus the cotangent of lam' . eta
        parts = [ga, gb]
        if lv is not None:  # the one latent variable k loads on (n_sel is 1)
            parts.append(gab * etas[lv])
        for m in range(n_sel if lv is None else 0):  # the latent variables indicator k loads on
            chosen_lv = sel_ref[k * n_sel + m]
            chosen = etas[0]
            for other in range(1, n_lv):
                chosen = jnp.where(chosen_lv == other, etas[other], chosen)
            parts.append(gab * chosen)
        for q, part in enumerate(parts):  # per person: summed over the block's draws, (people, 1)
            sums_ref[0, q, :, pl.ds(k, 1)] = jnp.sum(part, axis=1, keepdims=True)
        if lv is not None:
            return tuple(d - gab * lam_ref[k * n_lv + lv] if i == lv else d for i, d in enumerate(d_eta))
        return tuple(d - gab * lam_ref[k * n_lv + i] for i, d in enumerate(d_eta))

    def run(segments):
        d_eta = _loop(segments, order_ref, one, tuple(jnp.zeros_like(g) for _ in range(n_lv)))
        for lv in range(n_lv):
            d_eta_ref[0, lv] = d_eta[lv]

    each_part(parts, run)


def _layout(eta, lo, hi):
    """eta (N, R, L) -> (L, N', R') and the per-person arrays (N, 1, K) -> (N', K', 1), padded to whole blocks
    (K' a power of two, as Triton wants; padded people and draws get cotangent 0, padded indicators are never
    visited). Also the block shape, chosen for (N, R)."""
    n, r, _ = eta.shape
    k = lo.shape[-1]
    blk = block_for(n, r)
    pn, pr, pk = padding(n, blk.people), padding(r, blk.draws), pow2_padding(k)
    eta_t = jnp.pad(jnp.moveaxis(eta, -1, 0), ((0, 0), (0, pn), (0, pr)))

    def person(x):  # (N', K', 1): see _indicator's columns
        return jnp.pad(x.reshape(n, k).astype(eta.dtype), ((0, pn), (0, pk)))[..., None]

    return eta_t, person(lo), person(hi), (pn, pr), blk


def _specs(n_lv: int, kp: int, params: tuple[int, ...], blk: Block):
    """Block specs on the grid (people blocks, draw blocks, parts of the indicators)."""
    block = (blk.people, blk.draws)
    eta = pl.BlockSpec((n_lv, *block), lambda i, j, q: (0, i, j))
    whole = [pl.BlockSpec((p,), lambda i, j, q: (0,)) for p in params]
    person = pl.BlockSpec((blk.people, kp, 1), lambda i, j, q: (i, 0, 0))
    return eta, whole, person, pl.BlockSpec(block, lambda i, j, q: (i, j))


def _whole(size: int) -> pl.BlockSpec:
    """A small 1-D input every program reads whole."""
    return pl.BlockSpec((size,), lambda i, j, q: (0,))


def _launch(eta_t, blk: Block, n_ind: int, loads):
    """(grid, orders, parts) of a kernel call: the grid (people blocks, draw blocks, parts of the indicators),
    the order array as a list of 0 or 1 inputs (`_plan`), and each part's segments."""
    people, draws = eta_t.shape[1] // blk.people, eta_t.shape[2] // blk.draws
    n_parts = parts_for(people * draws, n_ind)
    order, parts = _plan(loads, n_ind, n_parts)
    return (people, draws, n_parts), ([] if order is None else [order]), parts


def ordered_logit_person(eta, intercept, lam, inv, lo, hi, lower, upper, interpret=False, loads=None):
    """(N, R) per-draw sum over the group's indicators of log P(answer) less its draw-free part, as
    `core.logprob.ordered_loglik` computes it: eta (N, R, L); intercept, inv = 1/sigma (K,); lam (K, L);
    lo, hi the thresholds around each answer and lower, upper its masks (observed and not at an open end),
    (N, 1, K) each. loads: per indicator, the latent variables it loads on (lam is 0 elsewhere, and its
    gradient there is not computed); None: all of them.

    The kernels take a = (lo - intercept - lam . eta) inv as lo' - lam' . eta, with lo' = (lo - intercept) inv
    per person and indicator and lam' = lam inv (b alike): per indicator and draw they then read two numbers
    and a loading instead of seven, and XLA's reverse pass of these few lines carries the gradient back to
    intercept, inv, lam and the thresholds."""
    lo_s = jnp.where(lower, (lo - intercept) * inv, -FAR)
    hi_s = jnp.where(upper, (hi - intercept) * inv, FAR)
    return _scaled(eta, lam * inv[:, None], lo_s, hi_s, interpret, loads)


@partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _scaled(eta, lam_s, lo_s, hi_s, interpret, loads):
    return _forward(eta, lam_s, lo_s, hi_s, interpret, loads)


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


def _forward(eta, lam_s, lo_s, hi_s, interpret, loads, keep=False):
    n, r, n_lv = eta.shape
    n_ind = lam_s.shape[0]
    laid_out = _layout(eta, lo_s, hi_s)
    eta_t, lo_p, hi_p, _, blk = laid_out
    grid, orders, parts = _launch(eta_t, blk, n_ind, loads)
    eta_spec, whole, person, _ = _specs(n_lv, lo_p.shape[1], (n_ind * n_lv,), blk)
    ll = pl.pallas_call(  # one partial sum per part of the indicators, added up below
        partial(_forward_kernel, parts, bool(orders)),
        grid=grid,
        in_specs=[eta_spec, *whole, person, person, *[_whole(o.size) for o in orders]],
        out_specs=pl.BlockSpec((1, blk.people, blk.draws), lambda i, j, q: (q, i, j)),
        out_shape=jax.ShapeDtypeStruct((grid[2], *eta_t.shape[1:]), eta.dtype),
        interpret=interpret,
        compiler_params=None if interpret else plgpu.CompilerParams(num_warps=blk.warps),
    )(eta_t, lam_s.reshape(-1), lo_p, hi_p, *orders)
    ll = ll.sum(axis=0)[:n, :r]
    return (ll, laid_out) if keep else ll


def _fwd(eta, lam_s, lo_s, hi_s, interpret, loads):
    out, laid_out = _forward(eta, lam_s, lo_s, hi_s, interpret, loads, keep=True)
    return out, (eta.shape, lam_s, laid_out)  # the padded arrays, not laid out twice


def _bwd(interpret, loads, res, g):
    (n, r, n_lv), lam_s, laid_out = res
    n_ind = lam_s.shape[0]
    sel, onehot = _selection(loads, n_ind, n_lv)
    eta_t, lo_p, hi_p, (pn, pr), blk = laid_out
    kp = lo_p.shape[1]
    g_p = jnp.pad(g.astype(eta_t.dtype), ((0, pn), (0, pr)))  # padded draws and people: cotangent 0
    grid, orders, parts = _launch(eta_t, blk, n_ind, loads)
    eta_spec, whole, person, blocked = _specs(n_lv, kp, (n_ind * n_lv,), blk)
    n_sel = onehot.shape[0]
    n_sums = SUMS + n_sel
    # Each part writes the sums of its own indicators, so the parts share the sums' blocks; eta's cotangent
    # has one partial sum per part.
    d_eta_t, sums = pl.pallas_call(
        partial(_backward_kernel, n_sel, parts, bool(orders)),
        grid=grid,
        in_specs=[eta_spec, *whole, person, person, *[_whole(o.size) for o in orders], _whole(sel.size), blocked],
        out_specs=[
            pl.BlockSpec((1, n_lv, blk.people, blk.draws), lambda i, j, q: (q, 0, i, j)),
            pl.BlockSpec((1, n_sums, blk.people, kp), lambda i, j, q: (j, 0, i, 0)),
        ],
        out_shape=[
            jax.ShapeDtypeStruct((grid[2], *eta_t.shape), eta_t.dtype),
            jax.ShapeDtypeStruct((grid[1], n_sums, eta_t.shape[1], kp), eta_t.dtype),
        ],
        interpret=interpret,
        compiler_params=None if interpret else plgpu.CompilerParams(num_warps=blk.warps),
    )(eta_t, lam_s.reshape(-1), lo_p, hi_p, *orders, jnp.asarray(sel), g_p)
    d_eta = jnp.moveaxis(d_eta_t.sum(axis=0)[:, :n, :r], 0, -1)
    s = sums.sum(axis=0)[:, :n, :n_ind]  # (sums, N, K): over the draw blocks
    s_a, s_b, s_eta = s[0], s[1], s[SUMS:]
    d_lam = -jnp.einsum("mk,mkl->kl", s_eta.sum(axis=1), onehot.astype(s_eta.dtype))  # (K, L)
    shape = (n, 1, n_ind)
    return d_eta, d_lam, s_a.reshape(shape), s_b.reshape(shape)


_scaled.defvjp(_fwd, _bwd)
