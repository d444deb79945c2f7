"""Stable log-probabilities (`gradfit.core.logprob`) against independent references.

References: 60-digit `decimal` arithmetic for the logistic distribution and for log(1 - exp(x)); scipy's
`ndtr` in float64 where a difference of normal CDFs is accurate; and the asymptotic (Mills ratio) series of the
normal tail far out, where a naive difference of CDFs is 0 in float64.
"""

from __future__ import annotations

import math
from decimal import Decimal, getcontext, localcontext

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import ndtr

import gradfit  # noqa: F401  (enables float64)
from gradfit.core.logprob import log1mexp, log_interval, log_ordered

getcontext().prec = 60
LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


# ------------------------------------------------------------------------------------------------------
# References


def dec_log1mexp(x: float) -> float:
    """log(1 - e^x), x < 0, in 400-digit decimal arithmetic (enough for x = -1e-300 and for x = -700)."""
    with localcontext() as ctx:
        ctx.prec = 400
        return float((1 - Decimal(x).exp()).ln())


def dec_logistic_log_interval(a: float, b: float) -> float:
    """log(F(b) - F(a)) for the logistic F, in 60-digit decimal arithmetic (a = -inf / b = inf allowed)."""

    def F(x: float) -> Decimal:
        if x == -math.inf:
            return Decimal(0)
        if x == math.inf:
            return Decimal(1)
        return 1 / (1 + (-Decimal(x)).exp())

    return float((F(b) - F(a)).ln())


def log_normal_tail(x: float) -> float:
    """log Q(x) = log(1 - Phi(x)) for x >= 20 from the asymptotic series of the Mills ratio:

    Q(x) = phi(x)/x * (1 - 1/x^2 + 3/x^4 - 15/x^6 + ...); with x >= 20 eight terms leave a relative error
    below 17!!/x^18 < 2e-16.
    """
    assert x >= 20
    series, term = 1.0, 1.0
    for k in range(1, 9):
        term *= -(2 * k - 1) / (x * x)
        series += term
    return -0.5 * x * x - math.log(x) - LOG_SQRT_2PI + math.log(series)


def far_tail_log_interval(a: float, b: float) -> float:
    """log(Phi(b) - Phi(a)) for 20 <= a < b or a < b <= -20 (by symmetry), via `log_normal_tail`."""
    if b <= -20:
        a, b = -b, -a
    assert a >= 20
    la, lb = log_normal_tail(a), log_normal_tail(b)
    return la + math.log1p(-math.exp(lb - la))


def probit_log_interval(a: float, b: float) -> float:
    """log(Phi(b) - Phi(a)) with scipy, for moderate values (the larger-tail side is subtracted)."""
    diff = ndtr(-a) - ndtr(-b) if a > 0 else ndtr(b) - ndtr(a)
    return float(np.log(diff))


def f(fn, *args, **kw) -> float:
    return float(fn(*(jnp.asarray(a) for a in args), **kw))


# ------------------------------------------------------------------------------------------------------
# log1mexp


@pytest.mark.parametrize(
    "x", [-1e-300, -1e-20, -1e-10, -1e-5, -0.1, -0.5, -0.69, -0.7, -1.0, -5.0, -30.0, -40.0, -100.0, -700.0]
)
def test_log1mexp_against_decimal(x):
    """The documented contract: accurate in absolute terms everywhere, and relatively where |value| >= 1.

    (Far below 0 the value is -exp(x) ~ 0; relative accuracy of such negligible terms is not promised.)
    """
    ref = dec_log1mexp(x)
    assert abs(f(log1mexp, x) - ref) <= 1e-15 * max(1.0, abs(ref))


def test_log1mexp_is_accurate_where_the_naive_formula_is_not():
    # Near 0, log(1 - exp(x)) in float64 loses all digits: 1 - exp(-1e-20) is exactly 0.
    with np.errstate(divide="ignore"):
        assert np.log(1 - np.exp(-1e-20)) == -np.inf
        assert np.log(1 - np.exp(-1e-17)) == -np.inf
    assert f(log1mexp, -1e-20) == pytest.approx(math.log(1e-20), rel=1e-15)
    assert f(log1mexp, -1e-17) == pytest.approx(math.log(1e-17), rel=1e-15)


def test_log1mexp_gradient_is_finite_and_right():
    # d/dx log(1 - e^x) = -e^x / (1 - e^x) = -1 / expm1(-x)
    for x in (-1e-8, -0.3, -0.7, -3.0, -50.0, -700.0):
        expected = -1.0 / math.expm1(-x)
        assert float(jax.grad(log1mexp)(x)) == pytest.approx(expected, rel=1e-10)


# ------------------------------------------------------------------------------------------------------
# log_interval


MODERATE = [(-8.0, -7.5), (-3.0, -1.0), (-1.0, 0.5), (-0.2, 0.2), (0.0, 3.0), (0.5, 0.6), (2.0, 4.0), (7.0, 8.5)]


@pytest.mark.parametrize(("a", "b"), MODERATE)
def test_log_interval_probit_against_scipy(a, b):
    assert f(log_interval, a, b, link="probit") == pytest.approx(probit_log_interval(a, b), rel=1e-12, abs=1e-14)


@pytest.mark.parametrize(("a", "b"), [*MODERATE, (30.0, 31.0), (-31.0, -30.0), (100.0, 100.5), (-745.0, -700.0)])
def test_log_interval_logit_against_decimal(a, b):
    assert f(log_interval, a, b, link="logit") == pytest.approx(dec_logistic_log_interval(a, b), rel=1e-12)


@pytest.mark.parametrize(
    ("a", "b"), [(30.0, 31.0), (20.0, 20.001), (-31.0, -30.0), (-40.0, -39.0), (25.0, 1e3), (-1e3, -25.0)]
)
def test_log_interval_probit_far_tails(a, b):
    # (float64 computations use no asymptotic series: the tails are Mills ratios from rational approximations;
    # tests/core/test_probit.py checks a whole grid against 60-digit arithmetic.)
    expected = far_tail_log_interval(a, b)
    assert f(log_interval, a, b, link="probit") == pytest.approx(expected, rel=1e-13)


def test_naive_difference_fails_where_log_interval_does_not():
    assert ndtr(31.0) - ndtr(30.0) == 0.0  # 1 - 1 in float64
    assert np.isfinite(f(log_interval, 30.0, 31.0, link="probit"))
    assert f(log_interval, 30.0, 31.0, link="probit") == pytest.approx(-454.321243956502, rel=1e-12)


def test_log_interval_gradient_against_analytic():
    # d/db log(F(b) - F(a)) = f(b) / (F(b) - F(a)); d/da = -f(a) / (F(b) - F(a))
    def pdf(x):
        return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)

    for a, b in MODERATE:
        p = math.exp(probit_log_interval(a, b))
        ga, gb = jax.grad(lambda u, v: log_interval(u, v, "probit"), argnums=(0, 1))(a, b)
        assert float(gb) == pytest.approx(pdf(b) / p, rel=1e-9)
        assert float(ga) == pytest.approx(-pdf(a) / p, rel=1e-9)


# ------------------------------------------------------------------------------------------------------
# log_ordered


@pytest.mark.parametrize("link", ["probit", "logit"])
@pytest.mark.parametrize("x", [-1e3, -40.0, -3.0, 0.0, 2.5, 40.0, 1e3])
def test_log_ordered_edge_categories(link, x):
    """First category: log F(b); last category: log(1 - F(a)) = log F(-a); the other bound is ignored."""

    def ref_log_cdf(v):
        if link == "logit":
            return dec_logistic_log_interval(-math.inf, v)
        if v <= -20:
            return log_normal_tail(-v)
        return float(np.log(ndtr(v)))

    junk = 123.0  # the value of an absent bound must not matter
    first = f(log_ordered, junk, x, False, True, link=link)
    last = f(log_ordered, x, junk, True, False, link=link)
    rel = 1e-13 if link == "probit" else 1e-12
    assert first == pytest.approx(ref_log_cdf(x), rel=rel, abs=1e-300)
    assert last == pytest.approx(ref_log_cdf(-x), rel=rel, abs=1e-300)


@pytest.mark.parametrize("link", ["probit", "logit"])
def test_log_ordered_middle_category_and_probabilities_sum_to_one(link):
    cuts = np.array([-1.3, -0.2, 0.4, 2.0])
    mu = 0.37
    a = np.concatenate([[0.0], cuts]) - mu
    b = np.concatenate([cuts, [0.0]]) - mu
    has_lo = np.arange(5) > 0
    has_hi = np.arange(5) < 4
    lp = np.asarray(log_ordered(jnp.asarray(a), jnp.asarray(b), jnp.asarray(has_lo), jnp.asarray(has_hi), link))
    assert np.exp(lp).sum() == pytest.approx(1.0, abs=1e-14)
    for k in range(1, 4):
        ref = probit_log_interval(a[k], b[k]) if link == "probit" else dec_logistic_log_interval(a[k], b[k])
        assert lp[k] == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("link", ["probit", "logit"])
@pytest.mark.parametrize(
    ("a", "b", "has_lo", "has_hi"),
    [
        (-1e3, 1e3, True, True),
        (1e3, 1e3 + 1, True, True),
        (-1e3 - 1, -1e3, True, True),
        (0.0, -1e3, False, True),
        (0.0, 1e3, False, True),
        (-1e3, 0.0, True, False),
        (1e3, 0.0, True, False),
        (np.nan, 5.0, False, True),  # garbage in the absent bound
        (5.0, np.inf, True, False),
    ],
)
def test_log_ordered_value_and_gradient_finite_at_extremes(link, a, b, has_lo, has_hi):
    def fn(u, v):
        return log_ordered(u, v, jnp.asarray(has_lo), jnp.asarray(has_hi), link)

    value = fn(jnp.asarray(a), jnp.asarray(b))
    ga, gb = jax.grad(fn, argnums=(0, 1))(jnp.asarray(a), jnp.asarray(b))
    assert np.isfinite(float(value)) and float(value) <= 0
    assert np.isfinite(float(ga)) and np.isfinite(float(gb))
    if not has_lo:
        assert float(ga) == 0.0  # an absent bound carries no gradient
    if not has_hi:
        assert float(gb) == 0.0


def test_log_ordered_gradient_far_in_the_tail_matches_mills_ratio():
    # d/db log Phi(b) = phi(b) / Phi(b) ~ -b / (1 - 1/b^2 + 3/b^4) for b -> -inf
    b = -1e3
    g = float(jax.grad(lambda v: log_ordered(0.0, v, False, True, "probit"))(b))
    # the series' next term, 15/b^6, is 1.5e-17 relative here
    assert g == pytest.approx(-b / (1 - 1 / b**2 + 3 / b**4), rel=1e-13)


@pytest.mark.parametrize("link", ["probit", "logit"])
def test_log_ordered_open_category_beyond_big(link):
    b = -2e6
    first = f(log_ordered, 0.0, b, False, True, link=link)
    last = f(log_ordered, -b, 0.0, True, False, link=link)
    expected = -0.5 * b * b - math.log(-b) - LOG_SQRT_2PI if link == "probit" else b  # log F(b), leading terms
    assert first == pytest.approx(expected, rel=1e-9)
    assert last == pytest.approx(expected, rel=1e-9)
