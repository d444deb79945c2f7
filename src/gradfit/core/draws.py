"""Integration draws for simulated maximum likelihood.

Mixed logit and ICLV likelihoods integrate over person-level random terms; gradfit approximates each
person's integral by an average over `n_draws` points (Train 2009, *Discrete Choice Methods with
Simulation*, ch. 9).  Every function here returns a float64 array of shape ``(n_people, n_draws, dim)``
whose uniform values lie strictly inside (0, 1), so the normal transform never yields +-inf.

Draw types (`DRAW_TYPES`):

``"pseudo"``
    Independent uniforms from ``numpy.random.Generator(PCG64(seed))``.
``"halton"``
    Classic, unscrambled Halton sequence with the first `dim` primes as bases.  One long sequence is
    shared out person by person as in Train (2009, sec. 9.3.3): the sequence starts at index 1
    (1/2, 1/4, 3/4, ... in base 2), the first `HALTON_SKIP` = 10 points are discarded as a "burn in"
    because the early points of the higher bases are strongly correlated, and person ``i`` then gets
    points ``[i * n_draws, (i + 1) * n_draws)``.  Deterministic: `seed` is ignored.  Unscrambled Halton
    degrades beyond ten or so dimensions; prefer ``"scrambled_halton"`` or ``"sobol"`` there.
``"scrambled_halton"``
    The same layout, with random digit permutations (Matousek's random digit scrambling, as in
    ``scipy.stats.qmc.Halton(scramble=True)`` but implemented here): for every dimension and every digit
    position an independent uniform random permutation of all digits ``0 .. b-1`` (0 included, so base 2
    is scrambled too) is drawn from `seed`.  All digit positions down to the float64 resolution are
    permuted, and the value is the midpoint of the finest cell, so 0 and 1 never occur.
``"sobol"``
    Sobol points (Joe-Kuo direction numbers, unscrambled 32-bit integers from ``scipy.stats.qmc.Sobol``)
    with Owen's nested uniform scrambling done as in Burley (2020), "Practical Hash-based Owen Scrambling"
    (reverse the bits, apply a Laine-Karras style hash permutation, reverse back), using the improved
    hash of N. Vegdahl (2021), "Building a Better LK Hash", whose statistics match exact Owen scrambling
    (see `_lk_hash`), with one 32-bit seed per dimension derived from `seed`.  ``scipy``'s own
    ``scramble=True`` is a linear matrix scramble plus digital shift, not Owen's scramble, hence the
    custom step.  The points are the first ``n_people * n_draws`` points of the net of the smallest power
    of two that holds them, handed out consecutively per person.  Integers ``k`` map to
    ``(k + 0.5) / 2**32``.
``"mlhs"``
    Modified Latin hypercube sampling (Hess, Train & Polak 2006): for each person and dimension,
    ``u_r = (r - 1 + xi) / R`` for ``r = 1 .. R`` with a single ``xi ~ U(0, 1)``, then the R values are
    shuffled independently per person and dimension.
"""

from __future__ import annotations

import operator
import warnings

import numpy as np
from scipy.special import ndtri
from scipy.stats import qmc

from gradfit.errors import SpecError

__all__ = ["DRAW_TYPES", "HALTON_SKIP", "normal_draws", "uniform_draws"]

DRAW_TYPES = ("pseudo", "halton", "scrambled_halton", "sobol", "mlhs")

#: Number of leading Halton points (after index 0) discarded before the first person's draws.
HALTON_SKIP = 10

# Halton values are built as integers numer / base**n_digits with base**n_digits <= 2**50, so that the
# numerator is exact in int64 and in float64, and the midpoint (numer + 0.5) / base**n_digits stays < 1.
_HALTON_PRECISION_BITS = 50
# Digits of a Halton index are mapped several at a time through a lookup table of at most this size.
_HALTON_TABLE_SIZE = 4096
# Replacement for an exact 0.0 from a [0, 1) generator: half the resolution of numpy's doubles.
_TINY = 2.0**-54
_TWO_32 = 2.0**32
# Sobol points are assembled from blocks of 2**_SOBOL_LOW_BITS consecutive points.
_SOBOL_LOW_BITS = 12
# Rows of Sobol points scrambled at a time (keeps the temporaries in cache).
_SOBOL_SLICE_ROWS = 2**13


def uniform_draws(kind: str, n_people: int, n_draws: int, dim: int, seed: int = 0) -> np.ndarray:
    """Uniform integration draws, float64 of shape ``(n_people, n_draws, dim)``, strictly inside (0, 1).

    `kind` is one of `DRAW_TYPES` (see the module docstring).  The same arguments always give the same
    array; `seed` is ignored by the deterministic ``"halton"``.
    """
    n_people, n_draws, dim, seed = _check_arguments(kind, n_people, n_draws, dim, seed)
    if kind == "pseudo":
        return _pseudo(n_people, n_draws, dim, seed)
    if kind == "mlhs":
        return _mlhs(n_people, n_draws, dim, seed)
    n_total = n_people * n_draws
    if kind == "halton":
        columns = _halton_points(n_total, dim, skip=HALTON_SKIP, rng=None)
    elif kind == "scrambled_halton":
        columns = _halton_points(n_total, dim, skip=HALTON_SKIP, rng=_generator(seed))
    else:
        columns = _sobol_owen_points(n_total, dim, seed)
    # Points are laid out consecutively: person i owns rows [i * n_draws, (i + 1) * n_draws).
    return columns.reshape(n_people, n_draws, dim)


def normal_draws(
    kind: str, n_people: int, n_draws: int, dim: int, seed: int = 0, antithetic: bool = False
) -> np.ndarray:
    """Standard normal integration draws, float64 of shape ``(n_people, n_draws, dim)``.

    The draws are ``scipy.special.ndtri`` of `uniform_draws`.  With ``antithetic=True``, `n_draws` must
    be even: ``n_draws // 2`` base draws ``z`` are generated per person and the person's draws are
    ``[z, -z]`` along the draws axis, so every person's draws pair off to sum to exactly zero.
    """
    if antithetic:
        n_half = _positive_int("n_draws", n_draws)
        if n_half % 2:
            raise SpecError(f"antithetic draws need an even number of draws, got n_draws={n_half}")
        z = ndtri(uniform_draws(kind, n_people, n_half // 2, dim, seed))
        return np.concatenate([z, -z], axis=1)
    return ndtri(uniform_draws(kind, n_people, n_draws, dim, seed))


# --------------------------------------------------------------------------------------------------
# Argument checks


def _check_arguments(kind: str, n_people: int, n_draws: int, dim: int, seed: int) -> tuple[int, ...]:
    if kind not in DRAW_TYPES:
        raise SpecError(f"unknown draw type {kind!r}; use one of {', '.join(DRAW_TYPES)}")
    n_people = _positive_int("n_people", n_people)
    n_draws = _positive_int("n_draws", n_draws)
    dim = _positive_int("dim", dim)
    try:
        seed = operator.index(seed)
    except TypeError:
        raise SpecError(f"the draws seed must be a non-negative integer, got {seed!r}") from None
    if seed < 0:
        raise SpecError(f"the draws seed must be a non-negative integer, got {seed}")
    return n_people, n_draws, dim, seed


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool):
        raise SpecError(f"{name} must be a positive integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise SpecError(f"{name} must be a positive integer, got {value!r}") from None
    if value < 1:
        raise SpecError(f"{name} must be a positive integer, got {value}")
    return value


def _generator(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


# --------------------------------------------------------------------------------------------------
# Pseudo-random and MLHS


def _pseudo(n_people: int, n_draws: int, dim: int, seed: int) -> np.ndarray:
    u = _generator(seed).random((n_people, n_draws, dim))
    # Generator.random is on [0, 1); an exact 0 (probability 2**-53 per value) would give ndtri = -inf.
    u[u == 0.0] = _TINY
    return u


def _mlhs(n_people: int, n_draws: int, dim: int, seed: int) -> np.ndarray:
    rng = _generator(seed)
    xi = rng.random((n_people, 1, dim))
    r = np.arange(n_draws, dtype=np.float64).reshape(1, n_draws, 1)
    u = (r + xi) / n_draws
    # Rounding of (r + xi) / R can land exactly on a stratum's upper edge (r + 1) / R, or on 0: clamp each
    # value into its own stratum [r / R, (r + 1) / R) so that every stratum holds exactly one draw.
    lower = np.maximum(r / n_draws, _TINY)
    upper = np.nextafter((r + 1) / n_draws, 0.0)
    np.clip(u, lower, upper, out=u)
    # One independent shuffle of the R strata per person and dimension.
    return rng.permuted(u, axis=1)


# --------------------------------------------------------------------------------------------------
# Halton


def _first_primes(n: int) -> list[int]:
    primes: list[int] = []
    candidate = 2
    while len(primes) < n:
        if all(candidate % p for p in primes if p * p <= candidate):
            primes.append(candidate)
        candidate += 1
    return primes


def _halton_points(n_points: int, dim: int, skip: int, rng: np.random.Generator | None) -> np.ndarray:
    """Halton points with indices ``skip + 1 .. skip + n_points``, shape ``(n_points, dim)``.

    ``rng=None`` gives the classic radical inverse; otherwise every digit position of every dimension gets
    an independent random permutation of the digits drawn from `rng`.
    """
    out = np.empty((n_points, dim), dtype=np.float64)
    for j, base in enumerate(_first_primes(dim)):
        out[:, j] = _radical_inverse(skip + 1, n_points, base, rng)
    return out


def _radical_inverse(start: int, n: int, base: int, rng: np.random.Generator | None) -> np.ndarray:
    """(Digit-permuted) radical inverse in `base` of the indices ``start .. start + n - 1``.

    Value = sum_k perm_k(d_k) * base**-(k + 1) for the base-`base` digits d_0, d_1, ... of the index (least
    significant first), truncated to `n_digits` positions and computed exactly as an int64 numerator over
    base**n_digits.  The digits are handled `chunk` at a time through tables of their combined
    contribution.  Because the indices are consecutive, the lowest chunk simply cycles through its table:
    the numerators are ``high[q] + table_0[r]`` for index ``q * S + r`` (S = table size), so the full-length
    work is one broadcast addition, and only the short array of ``q`` values goes through the digit loop.
    """
    n_digits = 0
    while base ** (n_digits + 1) <= 2**_HALTON_PRECISION_BITS:
        n_digits += 1
    denominator = base**n_digits
    weights = [base ** (n_digits - 1 - k) for k in range(n_digits)]
    identity = np.arange(base, dtype=np.int64)
    if rng is None:
        perms = np.tile(identity, (n_digits, 1))
    else:
        perms = rng.permuted(np.tile(identity, (n_digits, 1)), axis=1)

    chunk = 1
    while base ** (chunk + 1) <= _HALTON_TABLE_SIZE:
        chunk += 1
    table_size = base**chunk
    codes = np.arange(table_size, dtype=np.int64)
    tables = []
    for first in range(0, n_digits, chunk):
        table = np.zeros(table_size, dtype=np.int64)
        rest = codes
        for k in range(first, min(first + chunk, n_digits)):
            rest, digit = np.divmod(rest, base)
            table += perms[k, digit] * weights[k]
        tables.append(table)

    # All chunks are visited, so trailing zero digits contribute perm_k(0) (zero when unpermuted).
    q = np.arange(start // table_size, (start + n - 1) // table_size + 1, dtype=np.int64)
    high = np.zeros(q.shape, dtype=np.int64)
    for table in tables[1:]:
        q, low = np.divmod(q, table_size)
        high += table[low]
    offset = start % table_size
    numerator = (high[:, None] + tables[0][None, :]).ravel()[offset : offset + n]
    if rng is None:
        return numerator / denominator
    # Scrambled: the midpoint of the finest cell, so neither 0 nor 1 can occur.
    return (numerator + 0.5) / denominator


# --------------------------------------------------------------------------------------------------
# Sobol with hash-based Owen scrambling


def _reverse_bits(x: np.ndarray) -> np.ndarray:
    """Reverse the 32 bits of each uint32 (swap halves, bytes, nibbles, pairs, bits)."""
    one, two, four, eight, sixteen = (np.uint32(k) for k in (1, 2, 4, 8, 16))
    x = (x >> sixteen) | (x << sixteen)
    x = ((x >> eight) & np.uint32(0x00FF00FF)) | ((x & np.uint32(0x00FF00FF)) << eight)
    x = ((x >> four) & np.uint32(0x0F0F0F0F)) | ((x & np.uint32(0x0F0F0F0F)) << four)
    x = ((x >> two) & np.uint32(0x33333333)) | ((x & np.uint32(0x33333333)) << two)
    return ((x >> one) & np.uint32(0x55555555)) | ((x & np.uint32(0x55555555)) << one)


def _lk_hash(x: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Laine-Karras style hash of bit-reversed integers, Vegdahl's (2021) improved constants; in place.

    Every step changes a bit only as a function of itself and the less significant bits (xor with a
    multiple by an even constant, adding the seed, multiplying by an odd number), so in the reversed
    domain it is a nested (Owen) permutation: the flip of each digit depends only on the digits before
    it.  Burley's (2020) original constants were rejected because a test of the defining property failed:
    for n = 2**m Owen-scrambled points the variance of the estimate of E[2u] must be 1 / (3 n**3), and
    theirs came out 0.25 to 2.2 times that (m = 6 .. 12), while this hash gives 1.0 +- noise, like an
    exact scramble.  `seed` holds one uint32 per column of `x` (one per dimension), broadcast over rows.
    """
    x ^= x * np.uint32(0x3D20ADEA)
    x += seed
    x *= (seed >> np.uint32(16)) | np.uint32(1)
    x ^= x * np.uint32(0x05526C56)
    x ^= x * np.uint32(0x53A22864)
    return x


def _owen_scramble(x: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Nested uniform scramble of 32-bit Sobol integers (new array; `x` is left unchanged)."""
    return _reverse_bits(_lk_hash(_reverse_bits(x), seed))


def _xor_span(basis: np.ndarray) -> np.ndarray:
    """All XOR combinations of the rows of `basis` (k, dim): row n of the result combines bits of n."""
    span = np.zeros((1, basis.shape[1]), dtype=np.uint32)
    for row in basis:
        span = np.concatenate([span, span ^ row])
    return span


def _sobol_basis(sampler: qmc.Sobol) -> np.ndarray | None:
    """Sobol integer points at indices 1, 2, 4, ..., 2**31, shape (32, dim), or None if unavailable.

    Sobol points are linear over GF(2) in the bits of the index: with direction numbers V_j (gray-code
    order), point n is the XOR of W_j = V_j ^ V_{j-1} over the set bits j of n, and W_j is point 2**j.
    scipy exposes no public way to get points at large indices quickly (fast_forward is linear in the
    jump), so the direction numbers are read from the sampler's private ``_sv``; the caller checks the
    first 4096 points built from them against scipy's own and falls back to plain (slower) generation if
    they disagree or ``_sv`` is missing.
    """
    directions = getattr(sampler, "_sv", None)
    if not isinstance(directions, np.ndarray) or directions.shape != (sampler.d, 32):
        return None
    v = directions.T.astype(np.uint32)
    basis = v.copy()
    basis[1:] ^= v[:-1]
    return basis


def _sobol_integers(n_points: int, dim: int) -> np.ndarray:
    """The first `n_points` unscrambled 32-bit Sobol integers, shape ``(n_points, dim)``, uint32."""
    if n_points > 2**32:
        raise SpecError(f"sobol draws are limited to 2**32 points in all, got {n_points}; use fewer draws")
    try:
        sampler = qmc.Sobol(dim, scramble=False, bits=32)
    except ValueError as exc:
        raise SpecError(f"sobol draws: {exc}; use 'scrambled_halton' or 'mlhs' draws") from None

    def from_scipy(n: int) -> np.ndarray:
        # The first n points are the same whether or not n is a power of two, so draw only what is used
        # rather than the whole 2**m net; silence scipy's balance warning about that.
        sampler.reset()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The balance properties", category=UserWarning)
            points = sampler.random(n)
        # scipy returns k * 2**-32 exactly, so the integers are recovered exactly.
        return (points * _TWO_32).astype(np.uint32)

    block = 2**_SOBOL_LOW_BITS
    reference = from_scipy(min(n_points, block))
    if n_points <= block:
        return reference
    basis = _sobol_basis(sampler)
    if basis is None or not np.array_equal(_xor_span(basis[:_SOBOL_LOW_BITS]), reference):
        return from_scipy(n_points)  # slow but always right
    # Index q * block + r: point = high[q] ^ low[r], one broadcast XOR over all points.
    n_blocks = -(-n_points // block)
    high_bits = (n_blocks - 1).bit_length()
    high = _xor_span(basis[_SOBOL_LOW_BITS : _SOBOL_LOW_BITS + high_bits])[:n_blocks]
    points = high[:, None, :] ^ reference[None, :, :]
    return points.reshape(-1, dim)[:n_points]


def _sobol_owen_points(n_points: int, dim: int, seed: int) -> np.ndarray:
    seeds = _generator(seed).integers(0, 2**32, size=dim, dtype=np.uint64).astype(np.uint32)
    integers = _sobol_integers(n_points, dim)
    out = np.empty((n_points, dim), dtype=np.float64)
    # The scramble is ~30 elementwise passes; doing them on cache-sized slices is several times faster
    # than on the whole array at once.
    for first in range(0, n_points, _SOBOL_SLICE_ROWS):
        rows = slice(first, first + _SOBOL_SLICE_ROWS)
        scrambled = _owen_scramble(integers[rows], seeds)
        np.add(scrambled, 0.5, out=out[rows])
    out /= _TWO_32
    return out
