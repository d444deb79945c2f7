"""Integration draws regenerated on the device from (seed, person index), for problems too large to store.

Why this exists.  `gradfit.core.draws` builds every person's draws up front on the host and stores them:
``n_people * n_draws * dim`` float64 values, 40 GB for 1,000,000 people x 1,000 draws x 5 latent
dimensions.  Here a person's draws are a pure function of ``(seed, global person index)``, so a
likelihood that walks over the people in chunks can regenerate each chunk's draws on the device, inside
``jit``/``scan``, and nothing of size ``n_people * n_draws`` is ever held in memory.

Random stream.  The bits come from the Threefry-2x32 counter-based hash (Salmon et al. 2011, "Parallel
random numbers: as easy as 1, 2, 3"; 20 rounds, as in Random123 and ``jax.random``), written out here
with an explicit counter layout rather than called through ``jax.random.bits``, whose output depends on
the ``jax_threefry_partitionable`` setting and may change between JAX versions.  The 64-bit `seed` is
the key, split into the words ``(seed >> 32, seed & 0xFFFFFFFF)``; the counter is the pair
``(person index, j)`` where ``j`` numbers the 64-bit words one person uses.  Each hash gives two 32-bit
words ``(w0, w1)``.  Consequently

* a person's draws depend only on (seed, that person's index, n_draws, dim, kind, antithetic), never on
  which other people are in the batch, the batch size or its order, so any chunking of the people gives
  the same draws;
* the random bits, the uniforms (exact integer-to-float steps) and the MLHS shuffles are identical on
  every device; only the inverse normal CDF, which uses ``log``, may differ in the last bit between CPU
  and GPU math libraries.  A fit is thus reproducible across devices (to rounding) and chunkings;
* this is a different random stream from the host ``"pseudo"`` and ``"mlhs"`` draws of
  `gradfit.core.draws` (numpy PCG64): the same seed gives different numbers, and estimates differ from
  those with stored draws by simulation noise only.

Uniforms.  A word pair maps to ``u = (w0 * 2**20 + (w1 >> 12) + 0.5) / 2**52``: the midpoint of one of
``2**52`` equal cells, computed exactly in float64, so ``2**-53 <= u <= 1 - 2**-53`` and the inverse normal
CDF is finite (``|z| <= 8.2``).

Draw types (`GENERATED_DRAW_TYPES`), for element ``(r, k)`` (draw ``r``, dimension ``k``) of a person with
``R = n_draws`` draws:

``"pseudo"``
    Independent uniforms from the words at ``j = r * dim + k``.
``"mlhs"``
    Modified Latin hypercube sampling (Hess, Train & Polak 2006), as ``"mlhs"`` in `gradfit.core.draws`:
    one offset ``xi_k`` per dimension (the uniform from word ``j = R * dim + k``), values
    ``(s + xi_k) / R`` for the strata ``s = 0 .. R-1``, each clamped into its own stratum
    ``[s / R, (s + 1) / R)`` (rounding can land on the upper edge) and above 0, then shuffled independently
    per person and dimension: draw ``r`` gets stratum ``s = perm_k[r]``, where ``perm_k`` is the stable
    argsort, over ``r = 0 .. R-1``, of the sort keys ``(w0, w1 >> b)`` of the words ``j = r * dim + k``,
    ``b = bit_length(R - 1)`` (a tie of these ``64 - b`` random bits, probability about
    ``R**2 / 2**(65 - b)``, keeps index order; see `_shuffle`).

float32.  Uniforms and the inverse normal CDF are computed in float64 (whenever JAX's 64-bit mode is on, as
gradfit always sets it) and only the normal draws are rounded to `dtype` at the end.  So float32 draws are
exactly the float64 draws rounded: switching precision changes rounding, not the random stream; the tails
are not cut off at the float32 uniform resolution (``|z| <= 5.3``); and no uniform can round to 0 or 1
before the transform.  The price is a float64 ``ndtri`` per value, which is cheap on data-centre GPUs but
slow on GPUs with reduced float64 throughput.  If 64-bit mode
has been switched off, everything is done in float32 with ``u = ((w0 >> 9) + 0.5) / 2**23``, which is
exactly representable and also strictly inside (0, 1).
"""

from __future__ import annotations

import functools
import operator

import jax
import jax.numpy as jnp
import numpy as np

from gradfit.core.draws import _positive_int
from gradfit.errors import SpecError

__all__ = ["GENERATED_DRAW_TYPES", "generated_normal_draws", "generated_uniform_draws"]

GENERATED_DRAW_TYPES = ("pseudo", "mlhs")

# The seed is the 64-bit Threefry key; a person index is the first 32-bit counter word.
_SEED_LIMIT = 2**64
_INDEX_LIMIT = 2**32
# Threefry-2x32 constants (Salmon et al. 2011, Random123): key-schedule parity and rotation amounts.
_THREEFRY_PARITY = 0x1BD11BDA
_THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def generated_uniform_draws(
    kind: str, seed: int, people: jax.Array, n_draws: int, dim: int, dtype=jnp.float64
) -> jax.Array:
    """Uniform draws ``(len(people), n_draws, dim)`` for the people with these global indices.

    `people` is a 1-D integer array of indices in ``[0, 2**32)``; it may be traced (inside ``jit`` or
    ``scan``), the other arguments are static Python values.  Row ``i`` depends only on ``people[i]``,
    `seed`, `kind`, `n_draws` and `dim` (module docstring).  The values are computed in float64 (see the
    module docstring) and then rounded to `dtype`; they are strictly inside (0, 1) in float64.  In a
    narrower `dtype` they are kept below 1 but may round onto an MLHS stratum's edge; the normal draws
    do not have that problem because they are rounded only after the transform.
    """
    kind, seed, n_draws, dim, dtype = _check_arguments(kind, seed, n_draws, dim, dtype)
    people = _check_people(people)
    return _uniform_jit(people, _seed_words(seed), kind=kind, n_draws=n_draws, dim=dim, dtype=dtype)


def generated_normal_draws(
    kind: str, seed: int, people: jax.Array, n_draws: int, dim: int, antithetic: bool = False, dtype=jnp.float64
) -> jax.Array:
    """Standard-normal draws ``(len(people), n_draws, dim)`` for the people with these global indices.

    The draws are ``ndtri`` of `generated_uniform_draws`, computed in float64 and then rounded to `dtype`
    (module docstring).  With ``antithetic=True``, `n_draws` must be even: ``n_draws // 2`` base draws ``z``
    are generated per person and the person's draws are ``[z, -z]`` along the draws axis, as in
    `gradfit.core.draws.normal_draws`.  Cheap enough to call inside every likelihood evaluation:
    elementwise hashing plus, for ``"mlhs"``, one sort of length `n_draws` per person and dimension.
    """
    kind, seed, n_draws, dim, dtype = _check_arguments(kind, seed, n_draws, dim, dtype)
    if not isinstance(antithetic, bool):
        raise SpecError(f"antithetic must be true or false, got {antithetic!r}")
    if antithetic and n_draws % 2:
        raise SpecError(f"antithetic draws need an even number of draws, got n_draws={n_draws}")
    people = _check_people(people)
    return _normal_jit(
        people, _seed_words(seed), kind=kind, n_draws=n_draws, dim=dim, antithetic=antithetic, dtype=dtype
    )


def seed_key(kind: str, seed: int, n_draws: int, dim: int, antithetic: bool = False) -> np.ndarray:
    """The checked key words of `seed`, uint32[2]: data to pass to `draws_for_key` inside a traced function.

    Checks every argument as `generated_normal_draws` does, so that a model built with them cannot fail later.
    """
    kind, seed, n_draws, dim, _ = _check_arguments(kind, seed, n_draws, dim, jnp.float64)
    if antithetic and n_draws % 2:
        raise SpecError(f"antithetic draws need an even number of draws, got n_draws={n_draws}")
    return np.asarray([seed >> 32, seed & 0xFFFFFFFF], dtype=np.uint32)


def draws_for_key(key, people, *, kind: str, n_draws: int, dim: int, antithetic: bool, dtype) -> jax.Array:
    """`generated_normal_draws` with the seed given as key words (`seed_key`), which may be traced: a model
    keeps the key among its data, so another seed is another argument, not another compilation."""
    return _normal_jit(people, key, kind=kind, n_draws=n_draws, dim=dim, antithetic=antithetic, dtype=dtype)


# --------------------------------------------------------------------------------------------------
# Argument checks (plain Python, before tracing)


def _check_arguments(kind: str, seed: int, n_draws: int, dim: int, dtype) -> tuple:
    if kind not in GENERATED_DRAW_TYPES:
        raise SpecError(f"unknown generated draw type {kind!r}; use one of {', '.join(GENERATED_DRAW_TYPES)}")
    n_draws = _positive_int("n_draws", n_draws)
    dim = _positive_int("dim", dim)
    # The word counter j = r * dim + k, and R * dim + k for the MLHS offsets, is one 32-bit word.
    if (n_draws + 1) * dim > _INDEX_LIMIT:
        raise SpecError(
            f"generated draws are limited to (n_draws + 1) * dim <= 2**32, got n_draws={n_draws}, dim={dim}"
        )
    if isinstance(seed, bool):
        raise SpecError(f"the draws seed must be a non-negative integer, got {seed!r}")
    try:
        seed = operator.index(seed)
    except TypeError:
        raise SpecError(f"the draws seed must be a non-negative integer, got {seed!r}") from None
    if not 0 <= seed < _SEED_LIMIT:
        raise SpecError(f"the draws seed must be a non-negative integer below 2**64, got {seed}")
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise SpecError(f"the draws dtype must be a floating-point type such as float64, got {dtype!r}") from None
    if not jnp.issubdtype(dtype, jnp.floating):
        raise SpecError(f"the draws dtype must be a floating-point type such as float64, got {dtype}")
    # As everywhere in JAX, float64 means float32 while 64-bit mode is off.
    dtype = np.dtype(jax.dtypes.canonicalize_dtype(dtype))
    return kind, seed, n_draws, dim, dtype


def _check_people(people) -> jax.Array:
    """A 1-D integer array of person indices; the values are checked unless they are traced."""
    if not isinstance(people, jax.Array):
        people = np.asarray(people)
    if people.ndim != 1 or not jnp.issubdtype(people.dtype, jnp.integer):
        raise SpecError(
            f"people must be a 1-D array of integer person indices, got shape {people.shape} of {people.dtype}"
        )
    if isinstance(people, jax.core.Tracer):
        return people  # values unknown here; they are taken modulo 2**32 by the conversion to uint32
    values = np.asarray(people)
    if values.size and (values.min() < 0 or values.max() >= _INDEX_LIMIT):
        raise SpecError(f"person indices must lie in [0, 2**32), got values from {values.min()} to {values.max()}")
    if isinstance(people, jax.Array):
        return people
    # Host indices go over as uint32: int64 would be narrowed to int32 while 64-bit mode is off.
    return jnp.asarray(values.astype(np.uint32))


def _seed_words(seed: int) -> jax.Array:
    return jnp.asarray([seed >> 32, seed & 0xFFFFFFFF], dtype=jnp.uint32)


# --------------------------------------------------------------------------------------------------
# Generation (traced)


@functools.partial(jax.jit, static_argnames=("kind", "n_draws", "dim", "dtype"))
def _uniform_jit(people, key, *, kind, n_draws, dim, dtype):
    work = _working_dtype()
    u = _uniforms(people, key, kind, n_draws, dim, work)
    if dtype == work:
        return u
    # A value just below 1 can round up to 1 in a narrower type; keep it strictly inside (0, 1).
    return jnp.minimum(u.astype(dtype), jnp.nextafter(jnp.asarray(1.0, dtype), jnp.asarray(0.0, dtype)))


@functools.partial(jax.jit, static_argnames=("kind", "n_draws", "dim", "antithetic", "dtype"))
def _normal_jit(people, key, *, kind, n_draws, dim, antithetic, dtype):
    work = _working_dtype()
    n_base = n_draws // 2 if antithetic else n_draws
    z = jax.scipy.special.ndtri(_uniforms(people, key, kind, n_base, dim, work)).astype(dtype)
    if antithetic:
        return jnp.concatenate([z, -z], axis=1)
    return z


def _working_dtype() -> np.dtype:
    # float64 whenever JAX's 64-bit mode is on (gradfit turns it on at import), else float32.
    return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))


def _threefry2x32(k0, k1, x0, x1) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32 with 20 rounds (Random123's ``threefry2x32_R(20, ...)``) on uint32 arrays, broadcast.

    Written out here rather than taken from JAX's ``threefry2x32`` primitive, which gives the same bits but
    on CPU is lowered as a rolled loop about ten times slower than this unrolled, fusible form.
    """
    ks = (k0, k1, k0 ^ k1 ^ jnp.uint32(_THREEFRY_PARITY))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for block in range(5):
        for rotation in _THREEFRY_ROTATIONS[block % 2]:
            x0 = x0 + x1
            x1 = (x1 << jnp.uint32(rotation)) | (x1 >> jnp.uint32(32 - rotation))
            x1 = x1 ^ x0
        x0 = x0 + ks[(block + 1) % 3]
        x1 = x1 + ks[(block + 2) % 3] + jnp.uint32(block + 1)
    return x0, x1


def _words(key: jax.Array, people: jax.Array, j: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32 of the counters ``(people[i], j)`` under `key`, shape ``(len(people),) + j.shape``."""
    index = people.astype(jnp.uint32).reshape((-1,) + (1,) * j.ndim)
    return _threefry2x32(key[0], key[1], index, j.astype(jnp.uint32)[None])


def _to_uniform(w0: jax.Array, w1: jax.Array, work: np.dtype) -> jax.Array:
    """Midpoint of one of 2**52 (float64) or 2**23 (float32) equal cells: exact, strictly inside (0, 1)."""
    if work == np.float64:
        # w0 * 2**20 < 2**52 and (w1 >> 12) < 2**20, so the sum and the + 0.5 are exact in float64.
        numerator = w0.astype(work) * 2.0**20 + (w1 >> jnp.uint32(12)).astype(work) + 0.5
        return numerator * 2.0**-52
    return ((w0 >> jnp.uint32(9)).astype(work) + 0.5) * 2.0**-23


def _uniforms(people, key, kind, n_draws, dim, work) -> jax.Array:
    if kind == "pseudo":
        j = jnp.arange(n_draws * dim, dtype=jnp.uint32).reshape(n_draws, dim)
        return _to_uniform(*_words(key, people, j), work)
    return _mlhs(people, key, n_draws, dim, work)


def _mlhs(people, key, n_draws, dim, work) -> jax.Array:
    # Built as (people, dim, draws) so that the shuffle sorts along the last, contiguous axis.
    r = jnp.arange(n_draws, dtype=jnp.uint32)
    k = jnp.arange(dim, dtype=jnp.uint32)[:, None]
    stratum = _shuffle(*_words(key, people, r * dim + k), n_draws)
    xi = _to_uniform(*_words(key, people, n_draws * dim + k), work)  # (people, dim, 1)
    s = stratum.astype(work)
    u = (s + xi) / n_draws
    # Rounding of (s + xi) / R can land on the stratum's upper edge (s + 1) / R: clamp each value into its
    # own stratum [s / R, (s + 1) / R), and above 0, so that every stratum holds exactly one draw.
    lower = jnp.maximum(s / n_draws, jnp.finfo(work).tiny)
    upper = jnp.nextafter((s + 1.0) / n_draws, jnp.zeros((), work))
    u = jnp.clip(u, lower, upper)
    return jnp.swapaxes(u, 1, 2)


def _shuffle(w0: jax.Array, w1: jax.Array, n_draws: int) -> jax.Array:
    """Stratum of each position: the stable argsort along the last axis of ``(w0, w1 >> b)``, int32.

    The low ``b = bit_length(R - 1)`` bits of ``w1`` are replaced by the position ``r``: the keys are then
    distinct, so the positions can be read back from the sorted keys themselves, and a tie of the
    remaining ``64 - b`` random bits (probability about ``R**2 / 2**(65 - b)``) keeps position order.  One
    single-operand uint64 sort is about four times faster on CPU than sorting keys with a payload.
    """
    bits = (n_draws - 1).bit_length()
    position = jnp.arange(n_draws, dtype=jnp.uint32)
    low_mask = jnp.uint32((1 << bits) - 1)
    w1 = (w1 & ~low_mask) | position
    if jax.dtypes.canonicalize_dtype(np.uint64) == np.uint64:
        packed = (w0.astype(jnp.uint64) << jnp.uint64(32)) | w1.astype(jnp.uint64)
        ranked = jax.lax.sort(packed, dimension=w0.ndim - 1).astype(jnp.uint32)
    else:  # 64-bit mode off: the same order as a two-key sort
        _, ranked = jax.lax.sort((w0, w1), dimension=w0.ndim - 1, num_keys=2)
    return (ranked & low_mask).astype(jnp.int32)
