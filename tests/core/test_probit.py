"""The normal interval probabilities of `gradfit.core.logprob` against an independent 60-digit reference.

log(Phi(b) - Phi(a)) and its derivatives phi(a)/P, phi(b)/P are computed in `decimal` arithmetic: the upper
tail Q(z) = 1 - Phi(z) from the positive-term series of erf for z < 5 and from the continued fraction
Q(z) = phi(z) / (z + 1/(z + 2/(z + 3/(z + ...)))) beyond, each far more accurate than float64. The grid covers
the bulk, the far tails (to +-40), narrow intervals (widths down to 1e-12), intervals holding almost all the
mass (log P ~ -1e-15) and the +-1e6 stand-ins that open-ended categories get.
"""

from __future__ import annotations

import math
from decimal import Context, Decimal, localcontext
from functools import cache

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradfit  # noqa: F401  (enables float64)
from gradfit.core._probit import _BIG, _open_ends
from gradfit.core.logprob import log_interval, log_ordered, ordered_loglik

PREC = 60


def _context():
    # Exponents wide enough that exp(-(1e6)^2 / 2) does not underflow.
    return localcontext(Context(prec=PREC, Emin=-(10**15), Emax=10**15))


@cache
def _pi() -> Decimal:
    # Machin's formula, 16 atan(1/5) - 4 atan(1/239), to the working precision
    def atan_inv(n: int) -> Decimal:
        x, x2, total, k, sign = Decimal(1) / n, Decimal(n * n), Decimal(0), 1, 1
        term = x
        while term > Decimal(10) ** -(PREC + 5):
            total += sign * term / k
            term /= x2
            k += 2
            sign = -sign
        return total

    with _context():
        return 16 * atan_inv(5) - 4 * atan_inv(239)


def dec_pdf(z: Decimal) -> Decimal:
    return (-z * z / 2).exp() / (2 * _pi()).sqrt()


def dec_upper_tail(z: Decimal) -> Decimal:
    """Q(z) = P(Z > z) for z >= 0."""
    if z < 5:
        # erf(x) = 2/sqrt(pi) exp(-x^2) sum_n 2^n x^(2n+1) / (1 3 5 ... (2n+1)): positive terms, no cancellation
        x = z / Decimal(2).sqrt()
        term, total, n = x, Decimal(0), 0
        while term > Decimal(10) ** -(PREC + 5) * (total + 1):
            total += term
            n += 1
            term *= 2 * x * x / (2 * n + 1)
        erf = 2 / _pi().sqrt() * (-x * x).exp() * total
        return (1 - erf) / 2
    # Continued fraction, evaluated backwards; 400 terms are ample for z >= 5.
    t = z
    for k in range(400, 0, -1):
        t = z + k / t
    return dec_pdf(z) / t


def dec_log_interval(a: float, b: float) -> tuple[float, float, float]:
    """(log P, d/da log P, d/db log P) for P = Phi(b) - Phi(a), a < b finite."""
    with _context():
        da, db = Decimal(a), Decimal(b)
        if da < 0 < db:
            out = dec_upper_tail(-da) + dec_upper_tail(db)
            p = 1 - out
            # log(1 - out) without losing out where it is below the working precision
            log_p = -(out + out * out / 2 + out**3 / 3) if out < Decimal(10) ** -15 else p.ln()
        else:
            p = dec_upper_tail(da) - dec_upper_tail(db) if da >= 0 else dec_upper_tail(-db) - dec_upper_tail(-da)
            log_p = p.ln()
        return float(log_p), float(-dec_pdf(da) / p), float(dec_pdf(db) / p)


def _grid() -> np.ndarray:
    rng = np.random.default_rng(2026)
    ends = np.concatenate([np.linspace(-40, 40, 41), [-8.5, -1.4142135, -1e-9, 0.0, 1e-9, 1.4142136, 7.9, 11.3]])
    pairs = [(a, b) for a in ends for b in ends if a < b]
    pairs += [tuple(np.sort(rng.uniform(-8, 8, 2))) for _ in range(300)]  # the bulk
    for a in (-39.0, -20.0, -8.0, -3.0, -1.5, -0.3, 0.0, 0.7, 1.3, 2.0, 6.0, 15.0, 33.0):  # narrow intervals
        pairs += [(a, a + w) for w in (1e-12, 1e-9, 1e-6, 1e-4, 1e-3, 5e-3, 1e-2, 3e-2, 0.1)]
    pairs += [(-8.0, 8.0), (-7.0, 8.0), (-8.0, 6.5), (-38.0, 9.0), (-5.0, 37.0)]  # P within 1e-15 of 1
    return np.array(pairs)


GRID = _grid()


@pytest.fixture(scope="module")
def reference():
    return np.array([dec_log_interval(a, b) for a, b in GRID])


def _probit(a, b):
    return log_interval(a, b, "probit")


def test_reference_is_right():
    """Spot checks of the decimal reference itself against known values."""
    assert float(dec_upper_tail(Decimal(0))) == 0.5
    assert float(dec_upper_tail(Decimal(1))) == pytest.approx(0.15865525393145705, rel=1e-15)
    assert float(dec_upper_tail(Decimal(5))) == pytest.approx(2.866515718791939e-07, rel=1e-15)
    assert float(dec_upper_tail(Decimal("4.999"))) == pytest.approx(2.881420141464132e-07, rel=1e-15)
    # the two branches agree where they meet
    with _context():
        z = Decimal(5)
        t = z
        for k in range(400, 0, -1):
            t = z + k / t
        series = dec_upper_tail(Decimal("4.9999999999999999999999"))
        assert abs(float((dec_pdf(z) / t - series) / series)) < 1e-20


def test_log_interval_probit_against_decimal(reference):
    value = np.asarray(jax.jit(jax.vmap(_probit))(jnp.asarray(GRID[:, 0]), jnp.asarray(GRID[:, 1])))
    assert np.isfinite(value).all()
    ref = reference[:, 0]
    # relative to the value, with an absolute floor only where the true value underflows float64
    err = np.abs(value - ref) / np.maximum(np.abs(ref), 1e-300)
    i = int(np.argmax(err))
    assert err[i] <= 1e-13, f"log P({GRID[i, 0]}, {GRID[i, 1]}) = {value[i]!r}, reference {ref[i]!r}"


def test_log_interval_probit_gradient_against_decimal(reference):
    grad = jax.jit(jax.vmap(jax.grad(_probit, argnums=(0, 1))))
    g_a, g_b = (np.asarray(g) for g in grad(jnp.asarray(GRID[:, 0]), jnp.asarray(GRID[:, 1])))
    assert np.isfinite(g_a).all() and np.isfinite(g_b).all()
    for got, ref in ((g_a, reference[:, 1]), (g_b, reference[:, 2])):
        # phi(x)/P is exp(-x^2/2 ...) of a rounded x: relative condition x^2 eps, up to 1.8e-13 at |x| = 40
        err = np.abs(got - ref) / np.maximum(np.abs(ref), 1e-290)
        i = int(np.argmax(err))
        assert err[i] <= 1e-12, f"at ({GRID[i, 0]}, {GRID[i, 1]}): {got[i]!r}, reference {ref[i]!r}"


@pytest.mark.parametrize("x", [-1e3, -40.0, -37.7, -20.0, -8.0, -1.0, 0.0, 0.3, 5.0, 9.0, 38.0, 40.0, 1e3])
def test_open_categories_use_finite_stand_ins_exactly(x):
    """First category log Phi(b) and last log(1 - Phi(a)), through the stand-ins `_open_ends` builds."""
    lo, hi = _open_ends(jnp.asarray(0.0), jnp.asarray(x), jnp.asarray(False), jnp.asarray(True))
    assert float(lo) == min(x, 0.0) - _BIG and float(hi) == x
    expected, _, mills = dec_log_interval(-1e300, x)  # log Phi(x) and phi(x) / Phi(x)
    first = float(log_ordered(jnp.asarray(0.0), jnp.asarray(x), False, True, "probit"))
    last = float(log_ordered(jnp.asarray(-x), jnp.asarray(0.0), True, False, "probit"))  # log(1 - Phi(-x))
    assert first == pytest.approx(expected, rel=1e-13, abs=1e-300)
    assert last == pytest.approx(expected, rel=1e-13, abs=1e-300)
    g_first = jax.grad(lambda v: log_ordered(0.0, v, False, True, "probit"))(jnp.asarray(x))
    g_last = jax.grad(lambda v: log_ordered(v, 0.0, True, False, "probit"))(jnp.asarray(-x))
    assert float(g_first) == pytest.approx(mills, rel=1e-12, abs=1e-300)
    assert float(g_last) == pytest.approx(-mills, rel=1e-12, abs=1e-300)


def test_nothing_is_non_finite_for_any_ordered_interval():
    """Values, gradients and Hessians over every pair of ends from -40 to 40, the stand-ins and open ends."""
    ends = np.concatenate([np.linspace(-40, 40, 81), [-1e6, 1e6, -1e3, 1e3]])
    a, b = np.meshgrid(ends, ends, indexing="ij")
    keep = a < b
    a, b = jnp.asarray(a[keep]), jnp.asarray(b[keep])
    value = jax.vmap(_probit)(a, b)
    grads = jax.vmap(jax.grad(_probit, argnums=(0, 1)))(a, b)
    hess = jax.vmap(jax.hessian(_probit, argnums=(0, 1)))(a, b)
    for arr in (value, *grads, *jax.tree.leaves(hess)):
        assert np.isfinite(np.asarray(arr)).all()
    assert (np.asarray(value) <= 0).all()


# ------------------------------------------------------------------------------------------------------
# ordered_loglik (the custom reverse pass, and the conditionals inside it)


def _ordered_case(seed: int = 3, n: int = 5, k: int = 4, r: int = 9):
    """mu (N, K, R) from the bulk to far tails; 5 categories, some first/last, some missing."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.0, 6.0, (n, k, r))
    mu[0, 0] = np.linspace(-45, 45, r)  # far tails on both sides
    cuts = np.array([-1.2, -0.3, 0.4, 1.5])
    cat = rng.integers(0, 5, (n, k, 1))
    lo = np.where(cat > 0, cuts[np.maximum(cat - 1, 0)], 0.0)
    hi = np.where(cat < 4, cuts[np.minimum(cat, 3)], 0.0)
    sigma = rng.uniform(0.5, 2.0, (k, 1))
    observed = rng.random((n, k, 1)) > 0.15
    return mu, lo, hi, sigma, cat > 0, cat < 4, observed


def _reference_ordered(mu, lo, hi, sigma, has_lo, has_hi, observed):
    """Per-draw sums and their derivatives in mu (N, K, R) from the decimal reference."""
    n, k, r = mu.shape
    total, d_mu = np.zeros((n, r)), np.zeros((n, k, r))
    for i in range(n):
        for j in range(k):
            if not observed[i, j, 0]:
                continue
            for q in range(r):
                a = (lo[i, j, 0] - mu[i, j, q]) / sigma[j, 0] if has_lo[i, j, 0] else -1e300
                b = (hi[i, j, 0] - mu[i, j, q]) / sigma[j, 0] if has_hi[i, j, 0] else 1e300
                v, g_a, g_b = dec_log_interval(a, b)
                total[i, q] += v
                d_mu[i, j, q] = -((g_a if has_lo[i, j, 0] else 0.0) + (g_b if has_hi[i, j, 0] else 0.0)) / sigma[j, 0]
    return total, d_mu


def test_ordered_loglik_probit_value_and_gradient_against_decimal():
    case = _ordered_case()
    mu, lo, hi, sigma, has_lo, has_hi, observed = case
    ref_total, ref_d_mu = _reference_ordered(*case)
    args = [jnp.asarray(x) for x in case]

    def f(mu, lo, hi, sigma):
        return ordered_loglik(mu, lo, hi, sigma, *args[4:], "probit")

    total = np.asarray(jax.jit(f)(*args[:4]))
    np.testing.assert_allclose(total, ref_total, rtol=1e-13)
    # value_and_grad runs the forward pass with residuals (another code path): same values
    weights = jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.5, total.shape))
    value, grads = jax.jit(jax.value_and_grad(lambda *x: (f(*x) * weights).sum(), argnums=(0, 1, 2, 3)))(*args[:4])
    assert float(value) == pytest.approx(float((ref_total * np.asarray(weights)).sum()), rel=1e-13)
    g_mu = np.asarray(grads[0])
    assert np.isfinite(g_mu).all() and all(np.isfinite(np.asarray(g)).all() for g in grads)
    expected = ref_d_mu * np.asarray(weights)[:, None, :]
    np.testing.assert_allclose(g_mu, expected, rtol=1e-11, atol=1e-300)
    # thresholds and scales: sums of the same partial derivatives
    d_lo_ref = np.zeros(lo.shape)
    for i, j in np.ndindex(lo.shape[:2]):
        if observed[i, j, 0] and has_lo[i, j, 0]:
            for q in range(mu.shape[2]):
                a = (lo[i, j, 0] - mu[i, j, q]) / sigma[j, 0]
                b = (hi[i, j, 0] - mu[i, j, q]) / sigma[j, 0] if has_hi[i, j, 0] else 1e300
                d_lo_ref[i, j, 0] += dec_log_interval(a, b)[1] / sigma[j, 0] * float(weights[i, q])
    np.testing.assert_allclose(np.asarray(grads[1]), d_lo_ref, rtol=1e-11, atol=1e-12)


def test_ordered_loglik_probit_hessian_matches_differences_of_the_gradient():
    """Forward-over-reverse (how Model.hessian differentiates) against central differences of the gradient."""
    case = _ordered_case(seed=5, n=3, k=3, r=7)
    args = [jnp.asarray(x) for x in case]

    def total(theta):  # mu shifted and the scales scaled by two parameters
        return ordered_loglik(args[0] + theta[0], args[1], args[2], args[3] * theta[1], *args[4:], "probit").sum()

    theta = jnp.asarray([0.3, 1.2])
    grad = jax.grad(total)
    hess = np.asarray(jax.jit(jax.jacfwd(grad))(theta))
    assert np.isfinite(hess).all()
    h = 1e-5
    fd = np.stack(
        [(np.asarray(grad(theta + h * e)) - np.asarray(grad(theta - h * e))) / (2 * h) for e in np.eye(2)], axis=1
    )
    np.testing.assert_allclose(hess, fd, rtol=1e-6, atol=1e-6 * np.abs(hess).max())
    np.testing.assert_allclose(hess, hess.T, rtol=1e-12)


def test_ordered_loglik_probit_finite_far_out():
    """Means 1e3 away from every threshold, in both directions: everything finite, gradients included."""
    mu, lo, hi, sigma, has_lo, has_hi, observed = _ordered_case(seed=9)
    mu = np.where(np.arange(mu.shape[-1]) % 2 == 0, 1e3, -1e3) * np.ones_like(mu)
    args = [jnp.asarray(x) for x in (mu, lo, hi, sigma, has_lo, has_hi, observed)]

    def f(*x):
        return ordered_loglik(*x, *args[4:], "probit").sum()

    value, grads = jax.value_and_grad(f, argnums=(0, 1, 2, 3))(*args[:4])
    assert np.isfinite(float(value))
    for g in grads:
        assert np.isfinite(np.asarray(g)).all()


def test_float32_inputs_use_the_generic_path():
    a, b = jnp.asarray([-1.0, 0.5, -30.0], jnp.float32), jnp.asarray([0.3, 2.0, -29.0], jnp.float32)
    got = np.asarray(log_interval(a, b, "probit"))
    assert got.dtype == np.float32
    expected = [dec_log_interval(float(x), float(y))[0] for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_narrow_intervals_keep_their_digits():
    """Widths far below the spacing of the tail probabilities: the end-density rule takes over."""
    for a in (-30.0, -2.0, 0.5, 1.41, 9.0):
        for w in (1e-14, 1e-10, 1e-7, 1e-3):
            got = float(_probit(jnp.asarray(a), jnp.asarray(a + w)))
            expected = dec_log_interval(a, a + w)[0]
            assert got == pytest.approx(expected, rel=1e-13), (a, w)
            assert math.isfinite(got)
