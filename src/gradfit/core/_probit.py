"""The normal distribution's interval probabilities, log(Phi(b) - Phi(a)), for the ordered-probit measurement
equations: the numerics behind `gradfit.core.logprob`'s probit link (private; use logprob's functions).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr

# Stands in for an infinite threshold: far enough out that F(-BIG) is 0 and F(BIG) is 1 to double precision,
# small enough that BIG**2 stays finite even in float32 (log_ndtr squares its argument in the tail).
_BIG = 1e6


def _open_ends(lo, hi, has_lower, has_upper):
    """Finite stand-ins for open category bounds, BIG beyond the finite bound and beyond 0."""
    lo = jnp.where(has_lower, lo, jnp.minimum(hi, 0.0) - _BIG)
    hi = jnp.where(has_upper, hi, jnp.maximum(lo, 0.0) + _BIG)
    return lo, hi


# The normal distribution, written for XLA's CPU backend, where the form of the code decides its speed. XLA's
# CPU fusion will not duplicate an "expensive" operation (exp, log, divide) into two consumers: one whose
# result several parts of the computation use splits the computation into several loops, each writing full
# people x indicators x draws arrays. Its log is a scalar library call per element, and its erf (inside
# log_ndtr) one that keeps the whole loop from being vectorised. So the exponential and the logarithm here
# are written out in multiplies, adds, selects and bit operations (as accurate as XLA's, about 1 ulp), and
# divisions appear only as `_reciprocal(x)` times something: the value of an interval is then one vectorised
# loop. On the Optima model (1906 x 7 x 100 elements, 2 cores) that is about six times faster than the
# log_ndtr-based code it replaces, which also lost digits where P is close to 1 and in narrow intervals.

_SQRT_HALF = 0.7071067811865476  # 1/sqrt(2)
_SQRT2 = 1.4142135623730951
_INV_SQRT_2PI = 0.3989422804014327
_LOG2E = 1.4426950408889634
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10  # ln 2 = HI + LO, HI has 32 bits

# Cephes' (ndtr.c) rational approximations, written for x = z / sqrt(2):
#   erf(x) = x T(x^2) / U(x^2) for x < 1; exp(x^2) erfc(x) = P(x) / Q(x) for 1 <= x < 8 and R(x) / S(x) beyond.
# Highest power first; U, Q and S have a leading 1. Each table is padded with leading zeros to one length, so
# that a single Horner loop with per-element coefficients evaluates whichever one applies.
_ERF_T = (
    9.60497373987051638749e0,
    9.00260197203842689217e1,
    2.23200534594684319226e3,
    7.00332514112805075473e3,
    5.55923013010394962768e4,
)
_ERF_U = (
    1.0,
    3.35617141647503099647e1,
    5.21357949780152679795e2,
    4.59432382970980127987e3,
    2.26290000613890934246e4,
    4.92673942608635921086e4,
)
_ERFCX_P = (
    2.46196981473530512524e-10,
    5.64189564831068821977e-1,
    7.46321056442269912687e0,
    4.86371970985681366614e1,
    1.96520832956077098242e2,
    5.26445194995477358631e2,
    9.34528527171957607540e2,
    1.02755188689515710272e3,
    5.57535335369399327526e2,
)
_ERFCX_Q = (
    1.0,
    1.32281951154744992508e1,
    8.67072140885989742329e1,
    3.54937778887819891062e2,
    9.75708501743205489753e2,
    1.82390916687909736289e3,
    2.24633760818710981792e3,
    1.65666309194161350182e3,
    5.57535340817727675546e2,
)
_ERFCX_R = (
    5.64189583547755073984e-1,
    1.27536670759978104416e0,
    5.01905042251180477414e0,
    6.16021097993053585195e0,
    7.40974269950448939160e0,
    2.97886665372100240670e0,
)
_ERFCX_S = (
    1.0,
    2.26052863220117276590e0,
    9.39603524938001434673e0,
    1.20489539808096656605e1,
    1.70814450747565897222e1,
    9.60896809063285878198e0,
    3.36907645100081516050e0,
)
_NUM = ((0.0,) * 4 + _ERF_T, _ERFCX_P, (0.0,) * 3 + _ERFCX_R)
_DEN = ((0.0,) * 3 + _ERF_U, _ERFCX_Q, (0.0,) * 2 + _ERFCX_S)
# fdlibm's log: log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)) with s = f / (2 + f), for sqrt(1/2) <= 1 + f < sqrt(2).
_LOG_LG = (
    6.666666666666735130e-01,
    3.999999999940941908e-01,
    2.857142874366239149e-01,
    2.222219843214978396e-01,
    1.818357216161805012e-01,
    1.531383769920937332e-01,
    1.479819860511658591e-01,
)
# Below NARROW = (b - a) max(1, |a|, |b|) an interval is integrated from its end densities (Euler-Maclaurin):
# there the difference of two tail probabilities would lose more digits than the truncated series.
_NARROW = 0.02


def _exp_nonpositive(x):
    """exp(x) for x <= 0; results below 2^-1022 flush to 0.

    Cody-Waite reduction to |r| <= ln(2)/2, a degree-13 Taylor polynomial (truncation error < 5e-18), and 2^n
    built from its bits. A NaN argument gives 0: callers let NaN through by other paths.
    """
    x = jnp.maximum(x, -745.0)
    n = jnp.floor(x * _LOG2E + 0.5)
    r = (x - n * _LN2_HI) - n * _LN2_LO
    p = 1.0 / math.factorial(13)
    for k in range(12, -1, -1):
        p = p * r + 1.0 / math.factorial(k)
    n = n.astype(jnp.int64)
    scale = jax.lax.bitcast_convert_type(jnp.maximum(n + 1023, 0) << 52, jnp.float64)
    return jnp.where(n < -1022, 0.0, p * scale)


def _reciprocal(x):
    """1/x, for use as a factor: a division feeding several operations can split the loop (see above)."""
    return 1.0 / x


@jax.custom_jvp
def _log_and_reciprocal(u):
    """(log u, 1/u) for positive u (below 2^1023), sharing one division.

    u = 2^k m with sqrt(1/2) <= m < sqrt(2) and f = m - 1; q = 1 / (m (2 + f)) gives both 1/m = (2 + f) q and
    fdlibm's s = f / (2 + f) = f m q.
    """
    tiny = u < 1e-300  # subnormal or nearly: scaled up first, the bit manipulation wants a normal number
    u = jnp.where(tiny, u * 2.0**200, u)
    # Adding 0x95F64 to the high word carries into the exponent exactly when the mantissa is >= sqrt(2).
    bits = jax.lax.bitcast_convert_type(u, jnp.int64) + jnp.int64(0x95F64 << 32)
    k = (bits >> 52) - 1023
    m_bits = (bits & jnp.int64(0x000FFFFFFFFFFFFF)) - jnp.int64(0x95F64 << 32) + jnp.int64(0x3FF0000000000000)
    m = jax.lax.bitcast_convert_type(m_bits, jnp.float64)
    f = m - 1.0
    q = _reciprocal(m * (2.0 + f))
    s = f * m * q
    inv = (2.0 + f) * q * jax.lax.bitcast_convert_type((1023 - k) << 52, jnp.float64)  # times 2^-k
    inv = jnp.where(tiny, inv * 2.0**200, inv)
    dk = k.astype(jnp.float64) - jnp.where(tiny, 200.0, 0.0)
    z = s * s
    w = z * z
    lg = _LOG_LG
    poly = w * (lg[1] + w * (lg[3] + w * lg[5])) + z * (lg[0] + w * (lg[2] + w * (lg[4] + w * lg[6])))
    half_f2 = 0.5 * f * f
    log = dk * _LN2_HI - ((half_f2 - (s * (half_f2 + poly) + dk * _LN2_LO)) - f)
    return log, inv


@_log_and_reciprocal.defjvp
def _log_and_reciprocal_jvp(primals, tangents):
    # The bit manipulation has no derivative of its own; second derivatives (the Hessian) need these.
    log, inv = _log_and_reciprocal(*primals)
    du_over_u = tangents[0] * inv
    return (log, inv), (du_over_u, -du_over_u * inv)


def _horner(v, small, mid, tables):
    """Horner's rule in v with each element's coefficients from tables[0] (small), [1] (mid) or [2]."""
    out = None
    for c_small, c_mid, c_far in zip(*tables, strict=True):
        c = c_small if c_small == c_mid == c_far else jnp.where(small, c_small, jnp.where(mid, c_mid, c_far))
        out = c if out is None else out * v + c
    return out


def _normal_tail(z, shift):
    """The standard normal's mass beyond z >= 0, and its density, both times exp(shift^2 / 2).

    Returns (small, head, tail, e): small = z < sqrt(2); head = Phi(z) - 1/2, valid where small; tail =
    Q(z) exp(shift^2/2); e = exp(-(z^2 - shift^2)/2) = sqrt(2 pi) phi(z) exp(shift^2/2). shift is 0 or the
    interval's nearer end (then >= sqrt(2), so never with small): the nearer end's tail is then its Mills
    ratio and nothing underflows however far out the interval lies. (z - shift)(z + shift) keeps the exponent
    accurate where z^2 - shift^2 would cancel.
    """
    x = z * _SQRT_HALF
    e = _exp_nonpositive(-0.5 * (z - shift) * (z + shift))
    small, mid = x < 1.0, x < 8.0
    v = jnp.where(small, x * x, jnp.minimum(x, 1e30))  # x^6 in R/S stays finite
    ratio = _horner(v, small, mid, _NUM) * _reciprocal(_horner(v, small, mid, _DEN))
    head = 0.5 * x * ratio  # erf(x) / 2 where small
    return small, head, jnp.where(small, 0.5 - head, 0.5 * e * ratio), e


def _probit_terms(a, b):
    """log(Phi(b) - Phi(a)) for a < b, with r, e_a, e_b such that phi(a)/P = r e_a and phi(b)/P = r e_b.

    P is formed as big - less from quantities that each carry full relative precision:
    * a < 0 < b: P = 1 - Q(|a|) - Q(b), with (Phi(z) - 1/2) in place of 1/2 - Q(z) for an end within sqrt(2);
    * both ends on one side: P = Q(near) - Q(far), or head(far) - head(near) when both lie within sqrt(2).
      When the nearer end is beyond sqrt(2), both tails are scaled by exp(near^2/2) (their Mills ratios) and
      near^2/2 is subtracted in logs, so far tails, and the +-1e6 stand-ins of open categories, neither
      underflow nor lose digits.
    The rounding error t of big - less (Fast2Sum, exact as big >= less >= 0) is added back as t/u, which keeps
    log P relatively accurate where P is close to 1. Narrow intervals are integrated from the end densities.
    """
    za, zb, straddle, far, shift = _geometry(a, b)
    small_a, head_a, tail_a, e_a = _normal_tail(za, shift)
    small_b, head_b, tail_b, e_b = _normal_tail(zb, shift)
    a_near = za <= zb
    head_n, head_f = jnp.where(a_near, head_a, head_b), jnp.where(a_near, head_b, head_a)
    tail_n, tail_f = jnp.where(a_near, tail_a, tail_b), jnp.where(a_near, tail_b, tail_a)
    small_f = jnp.where(a_near, small_b, small_a)
    big = jnp.where(
        straddle,
        jnp.where(small_a, head_a, 0.5) + jnp.where(small_b, head_b, 0.5),
        jnp.where(small_f, head_f, tail_n),
    )
    less = jnp.where(
        straddle,
        jnp.where(small_a, 0.0, tail_a) + jnp.where(small_b, 0.0, tail_b),
        jnp.where(small_f, head_n, tail_f),
    )
    u = big - less
    t = (big - u) - less
    # Narrow: P = w (f(a) + f(b))/2 - w^2/12 (f'(b) - f'(a)) + w^4/720 (f'''(b) - f'''(a)) with f' = -x f and
    # f''' = -(x^3 - 3x) f; the omitted terms are below 1e-14 relative for w max(1, |a|, |b|) < NARROW.
    w = b - a
    narrow = w * jnp.maximum(far, 1.0) < _NARROW
    w = jnp.where(narrow, w, 0.0)
    he3_a, he3_b = (a * a - 3.0) * a, (b * b - 3.0) * b
    rule = 0.5 * (e_a + e_b) + w * (
        (b * e_b - a * e_a) * (1.0 / 12.0) - w * w * (he3_b * e_b - he3_a * e_a) * (1.0 / 720.0)
    )
    u = jnp.where(narrow, _INV_SQRT_2PI * w * rule, u)
    positive = u > 0  # u underflows to 0 only where b - a is below ~1e-300; NaN (from NaN bounds) stays NaN
    log_u, inv = _log_and_reciprocal(jnp.where(positive, u, 1.0))
    value = log_u + jnp.where(narrow, 0.0, t * inv) - 0.5 * shift * shift
    value = jnp.where(positive, value, jnp.where(u == 0.0, -jnp.inf, jnp.nan))
    r = jnp.where(positive, _INV_SQRT_2PI * inv, jnp.where(u == 0.0, jnp.inf, jnp.nan))
    return value, r, e_a, e_b


def _geometry(a, b):
    """|a|, |b|, whether a < 0 < b, the farther end's |.|, and the shift of `_normal_tail`."""
    za, zb = jnp.abs(a), jnp.abs(b)
    straddle = (a < 0) & (b > 0)
    near = jnp.minimum(za, zb)
    return za, zb, straddle, jnp.maximum(za, zb), jnp.where(~straddle & (near >= _SQRT2), near, 0.0)


def _densities(a, b):
    """The e_a, e_b of `_probit_terms` alone (the same operations, so the same numbers)."""
    za, zb, _, _, shift = _geometry(a, b)
    return _exp_nonpositive(-0.5 * (za - shift) * (za + shift)), _exp_nonpositive(-0.5 * (zb - shift) * (zb + shift))


def _probit_value_generic(a, b):
    """log(Phi(b) - Phi(a)) from two log-CDFs, for dtypes other than float64 (float32 models)."""
    # When both ends lie in the upper tail, F(b) - F(a) is a difference of two numbers near 1; by symmetry it
    # equals F(-a) - F(-b), a difference of two small numbers, which logs represent exactly.
    upper_tail = a > 0
    lo = jnp.where(upper_tail, -b, a)
    hi = jnp.where(upper_tail, -a, b)
    log_hi = log_ndtr(hi)
    return log_hi + jnp.log(-jnp.expm1(log_ndtr(lo) - log_hi))  # log P_hi + log1mexp(log P_lo - log P_hi)


def _probit_parts_generic(a, b):
    value = _probit_value_generic(a, b)
    # d/db log P = phi(b) / P and d/da log P = -phi(a) / P, formed in logs so that tails neither overflow nor
    # underflow to 0/0.
    log_norm = 0.5 * jnp.log(2.0 * jnp.pi)
    d_b = jnp.exp(-0.5 * b * b - log_norm - value)
    d_a = -jnp.exp(-0.5 * a * a - log_norm - value)
    return value, d_a, d_b


def _probit_value(a, b):
    if jnp.result_type(a, b) != jnp.float64:
        return _probit_value_generic(a, b)
    return _probit_terms(a, b)[0]


def _probit_parts(a, b):
    """log(Phi(b) - Phi(a)) and its partial derivatives -phi(a)/P and phi(b)/P."""
    if jnp.result_type(a, b) != jnp.float64:
        return _probit_parts_generic(a, b)
    value, r, e_a, e_b = _probit_terms(a, b)
    return value, -e_a * r, e_b * r


@jax.custom_jvp
def _log_interval_probit(a, b):
    return _probit_value(a, b)


@_log_interval_probit.defjvp
def _log_interval_probit_jvp(primals, tangents):
    value, d_a, d_b = _probit_parts(*primals)
    return value, d_a * tangents[0] + d_b * tangents[1]


def _probit_bounds(mu, lo_tau, hi_tau, inv, has_lower, has_upper):
    return _open_ends((lo_tau - mu) * inv, (hi_tau - mu) * inv, has_lower, has_upper)


def _probit_value_and_ratio(mu, lo_tau, hi_tau, inv, has_lower, has_upper):
    """log P and r = 1/(sqrt(2 pi) P) (times exp(shift^2/2)) as the two halves of one complex array."""
    value, r, _, _ = _probit_terms(*_probit_bounds(mu, lo_tau, hi_tau, inv, has_lower, has_upper))
    return jax.lax.complex(value, r)


def _probit_derivatives(packed, mu, lo_tau, hi_tau, inv, has_lower, has_upper):
    """-phi(a)/P and phi(b)/P as one complex array, from `_probit_value_and_ratio`'s r."""
    e_a, e_b = _densities(*_probit_bounds(mu, lo_tau, hi_tau, inv, has_lower, has_upper))
    r = jnp.imag(packed)
    return jax.lax.complex(-e_a * r, e_b * r)


def _probit_forward(mu, lo_tau, hi_tau, inv, has_lower, has_upper, residuals):
    """Per-element log-probabilities and (with residuals) their partial derivatives in a and b.

    The value alone is one loop. XLA's CPU backend fuses no loop with two outputs, so with the derivatives
    it would recompute the interval probability in the loop of the value and again in each consumer of a
    derivative, four times in all. Instead one loop writes the value and r = 1/(sqrt(2 pi) P) as the two
    halves of a complex array, and a second, cheap one (two exponentials) writes the derivatives, r times
    the densities, the same way. Each loop sits in a conditional whose predicate is true unless a scale is
    NaN: XLA's CPU pipeline removes optimisation barriers and would fuse the parts of a complex array back
    into their consumers, while a conditional's result is computed once. Both conditionals return NaN
    otherwise, which is what a NaN scale gives anyway.
    """
    if mu.dtype != jnp.float64:  # the bit-level functions above are written for float64
        a, b = _probit_bounds(mu, lo_tau, hi_tau, inv, has_lower, has_upper)
        return _probit_parts_generic(a, b) if residuals else (_probit_value_generic(a, b), None, None)
    args = (mu, lo_tau, hi_tau, inv, has_lower, has_upper)
    if not residuals:
        return _probit_value(*_probit_bounds(*args)), None, None
    return _probit_with_derivatives(*args)


@jax.custom_jvp
def _probit_with_derivatives(mu, lo_tau, hi_tau, inv, has_lower, has_upper):
    finite = jnp.all(inv == inv)
    shape = jnp.broadcast_shapes(mu.shape, lo_tau.shape)
    args = (mu, lo_tau, hi_tau, inv, has_lower, has_upper)
    packed = jax.lax.cond(finite, _probit_value_and_ratio, lambda *_: jnp.full(shape, jnp.nan, jnp.complex128), *args)
    derivatives = jax.lax.cond(finite, _probit_derivatives, lambda packed, *_: packed, packed, *args)
    return jnp.real(packed), jnp.real(derivatives), jnp.imag(derivatives)


@_probit_with_derivatives.defjvp
def _probit_with_derivatives_jvp(primals, tangents):
    """Closed-form tangents (the Hessian's forward pass) from the primal outputs, instead of differentiating
    the conditionals and the approximations inside them.

    With d_a = -phi(a)/P and d_b = phi(b)/P: dd_a/da = -(a + d_a) d_a, dd_b/db = -(b + d_b) d_b and
    dd_a/db = dd_b/da = -d_a d_b. An open end is a constant (its stand-in carries no tangent).
    """
    value, d_a, d_b = _probit_with_derivatives(*primals)
    mu, lo_tau, hi_tau, inv, has_lower, has_upper = primals
    t_mu, t_lo, t_hi, t_inv = tangents[:4]
    a, b = _probit_bounds(*primals)
    t_a = jnp.where(has_lower, (t_lo - t_mu) * inv + (lo_tau - mu) * t_inv, 0.0)
    t_b = jnp.where(has_upper, (t_hi - t_mu) * inv + (hi_tau - mu) * t_inv, 0.0)
    cross = -d_a * d_b
    return (value, d_a, d_b), (
        d_a * t_a + d_b * t_b,
        -(a + d_a) * d_a * t_a + cross * t_b,
        cross * t_a - (b + d_b) * d_b * t_b,
    )
