"""Tests of gradfit.core.generated_draws against independent truths (Random123 test vectors, JAX's own
Threefry, the documented layout recomputed in numpy, sampling theory) and its chunking guarantees."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.extend.random import threefry_2x32
from scipy import stats

from gradfit.core.generated_draws import (
    GENERATED_DRAW_TYPES,
    _threefry2x32,
    _to_uniform,
    generated_normal_draws,
    generated_uniform_draws,
)
from gradfit.errors import SpecError

KINDS = GENERATED_DRAW_TYPES


def reference_words(seed: int, person: int, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Threefry-2x32 of the counters (person, j) under the key (seed >> 32, seed & 0xFFFFFFFF), by JAX's own
    implementation (which hashes the pairs formed by the two halves of its count array)."""
    j = np.asarray(j, dtype=np.uint32).ravel()
    count = jnp.asarray(np.concatenate([np.full(j.size, person, dtype=np.uint32), j]))
    key = (jnp.uint32(seed >> 32), jnp.uint32(seed & 0xFFFFFFFF))
    out = np.asarray(threefry_2x32(key, count))
    return out[: j.size], out[j.size :]


# --------------------------------------------------------------------------------------------------
# The hash and the uniform map


# Random123's kat_vectors for threefry2x32_20: counter (2 words), key (2 words), expected output.
KNOWN_ANSWERS = [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x243F6A88, 0x85A308D3), (0x13198A2E, 0x03707344), (0xC4923A9C, 0x483DF7A0)),
]


@pytest.mark.parametrize(("counter", "key", "expected"), KNOWN_ANSWERS)
def test_threefry_random123_known_answers(counter, key, expected) -> None:
    out = _threefry2x32(*(jnp.uint32(v) for v in key + counter))
    assert tuple(int(v) for v in out) == expected


def test_threefry_matches_jax_implementation() -> None:
    rng = np.random.default_rng(0)
    x0, x1 = rng.integers(0, 2**32, size=(2, 257), dtype=np.uint32)
    out = threefry_2x32((jnp.uint32(0xDEADBEEF), jnp.uint32(12345)), jnp.asarray(np.concatenate([x0, x1])))
    mine = _threefry2x32(jnp.uint32(0xDEADBEEF), jnp.uint32(12345), jnp.asarray(x0), jnp.asarray(x1))
    np.testing.assert_array_equal(np.concatenate([np.asarray(w) for w in mine]), np.asarray(out))


def test_uniform_map_extremes_stay_inside_open_interval() -> None:
    lo, hi = jnp.uint32(0), jnp.uint32(0xFFFFFFFF)
    u64 = [float(_to_uniform(w, w, np.dtype(np.float64))) for w in (lo, hi)]
    assert u64 == [2.0**-53, 1.0 - 2.0**-53]
    u32 = [_to_uniform(w, w, np.dtype(np.float32)) for w in (lo, hi)]
    assert [float(u) for u in u32] == [2.0**-24, 1.0 - 2.0**-24]
    assert all(u.dtype == np.float32 for u in u32)
    z = jax.scipy.special.ndtri(jnp.asarray(u64 + [float(u) for u in u32]))
    assert np.all(np.isfinite(z))


# --------------------------------------------------------------------------------------------------
# The documented layout, recomputed in numpy


def test_pseudo_follows_documented_counter_layout() -> None:
    seed, people, n_draws, dim = 2**40 + 7, np.array([3, 1_000_000, 2**32 - 1]), 6, 4
    u = np.asarray(generated_uniform_draws("pseudo", seed, people, n_draws, dim))
    for row, person in enumerate(people):
        w0, w1 = reference_words(seed, int(person), np.arange(n_draws * dim))
        expected = (w0.astype(np.float64) * 2.0**20 + (w1 >> 12) + 0.5) / 2.0**52
        np.testing.assert_array_equal(u[row], expected.reshape(n_draws, dim))


def test_mlhs_follows_documented_definition() -> None:
    seed, people, n_draws, dim = 99, np.array([0, 17]), 37, 3
    u = np.asarray(generated_uniform_draws("mlhs", seed, people, n_draws, dim))
    bits = (n_draws - 1).bit_length()
    for row, person in enumerate(people):
        w0, w1 = reference_words(seed, int(person), np.arange((n_draws + 1) * dim))
        for k in range(dim):
            j = np.arange(n_draws) * dim + k
            # Stable argsort of the keys (w0, w1 >> b): lexsort's last key is the primary one.
            perm = np.lexsort((np.arange(n_draws), w1[j] >> bits, w0[j]))
            np.testing.assert_array_equal(np.floor(u[row, :, k] * n_draws), perm)
            xi = (w0[n_draws * dim + k] * 2.0**20 + (w1[n_draws * dim + k] >> 12) + 0.5) / 2.0**52
            np.testing.assert_allclose(u[row, :, k], (perm + xi) / n_draws, rtol=0, atol=1e-15)


@pytest.mark.parametrize("kind", KINDS)
def test_normal_draws_are_ndtri_of_uniform_draws(kind: str) -> None:
    people = jnp.arange(5)
    u = generated_uniform_draws(kind, 3, people, 20, 3)
    z = generated_normal_draws(kind, 3, people, 20, 3)
    np.testing.assert_allclose(np.asarray(z), stats.norm.ppf(np.asarray(u)), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------------
# Shapes, dtypes, range


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_shape_dtype_range_and_finiteness(kind: str, dtype) -> None:
    people = jnp.arange(7)
    u = generated_uniform_draws(kind, 1, people, 33, 4, dtype=dtype)
    z = generated_normal_draws(kind, 1, people, 33, 4, dtype=dtype)
    for a in (u, z):
        assert a.shape == (7, 33, 4) and a.dtype == dtype
    assert np.all((np.asarray(u) > 0) & (np.asarray(u) < 1))
    assert np.all(np.isfinite(np.asarray(z)))


@pytest.mark.parametrize("kind", KINDS)
def test_float32_normals_are_float64_normals_rounded(kind: str) -> None:
    people = jnp.arange(7)
    z64 = np.asarray(generated_normal_draws(kind, 1, people, 33, 4))
    z32 = np.asarray(generated_normal_draws(kind, 1, people, 33, 4, dtype=jnp.float32))
    np.testing.assert_array_equal(z32, z64.astype(np.float32))


@settings(max_examples=12, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    n_people=st.integers(1, 4),
    n_draws=st.integers(1, 40),
    dim=st.integers(1, 5),
    seed=st.integers(0, 2**64 - 1),
)
def test_any_size_is_stratified_and_in_open_interval(kind: str, n_people: int, n_draws: int, dim: int, seed: int):
    u = np.asarray(generated_uniform_draws(kind, seed, np.arange(n_people), n_draws, dim))
    assert u.shape == (n_people, n_draws, dim)
    assert np.all((u > 0.0) & (u < 1.0))
    if kind == "mlhs":
        strata = np.sort(np.floor(u * n_draws), axis=1)
        np.testing.assert_array_equal(strata, np.broadcast_to(np.arange(n_draws)[None, :, None], u.shape))


# --------------------------------------------------------------------------------------------------
# A person's draws depend on nothing but (seed, index): chunking, order, jit, scan


@pytest.mark.parametrize("kind", KINDS)
def test_batches_give_the_same_rows(kind: str) -> None:
    whole = generated_normal_draws(kind, 5, jnp.arange(100), 30, 3)
    halves = [generated_normal_draws(kind, 5, jnp.arange(a, a + 50), 30, 3) for a in (0, 50)]
    np.testing.assert_array_equal(np.asarray(whole), np.concatenate([np.asarray(h) for h in halves]))
    order = np.random.default_rng(1).permutation(100)
    permuted = generated_normal_draws(kind, 5, jnp.asarray(order), 30, 3)
    np.testing.assert_array_equal(np.asarray(permuted), np.asarray(whole)[order])
    # One person alone, and a person far beyond the others, are unaffected by their company.
    single = generated_normal_draws(kind, 5, np.array([37]), 30, 3)
    np.testing.assert_array_equal(np.asarray(single)[0], np.asarray(whole)[37])
    mixed = generated_normal_draws(kind, 5, np.array([37, 2**32 - 1]), 30, 3)
    np.testing.assert_array_equal(np.asarray(mixed)[0], np.asarray(whole)[37])


@pytest.mark.parametrize("kind", KINDS)
def test_int32_int64_and_list_indices_agree(kind: str) -> None:
    base = np.asarray(generated_normal_draws(kind, 5, np.arange(4, dtype=np.int64), 10, 2))
    for people in (np.arange(4, dtype=np.int32), jnp.arange(4, dtype=jnp.int32), [0, 1, 2, 3]):
        np.testing.assert_array_equal(np.asarray(generated_normal_draws(kind, 5, people, 10, 2)), base)


@pytest.mark.parametrize("kind", KINDS)
def test_jit_and_scan_over_chunks_match_eager(kind: str) -> None:
    people = jnp.arange(60)
    eager = np.asarray(generated_normal_draws(kind, 11, people, 24, 2, antithetic=True))
    jitted = jax.jit(lambda p: generated_normal_draws(kind, 11, p, 24, 2, antithetic=True))(people)
    np.testing.assert_array_equal(np.asarray(jitted), eager)

    def chunk(carry, p):
        return carry, generated_normal_draws(kind, 11, p, 24, 2, antithetic=True)

    _, chunks = jax.lax.scan(chunk, 0, people.reshape(4, 15))
    np.testing.assert_array_equal(np.asarray(chunks).reshape(eager.shape), eager)


def test_same_seed_same_draws_and_seeds_differ_in_every_dimension() -> None:
    people = jnp.arange(5)
    for kind in KINDS:
        a = np.asarray(generated_uniform_draws(kind, 1, people, 20, 3))
        np.testing.assert_array_equal(a, np.asarray(generated_uniform_draws(kind, 1, people, 20, 3)))
        # 2**32 differs from 0 only in the key's high word, 2**64 - 1 is the largest seed.
        for other in (2, 2**32, 2**64 - 1):
            b = np.asarray(generated_uniform_draws(kind, other, people, 20, 3))
            assert all(not np.array_equal(a[..., j], b[..., j]) for j in range(3))
    zero, high = (np.asarray(generated_uniform_draws("pseudo", s, people, 20, 3)) for s in (0, 2**32))
    assert not np.array_equal(zero, high)


# --------------------------------------------------------------------------------------------------
# MLHS


def test_mlhs_one_draw_per_stratum() -> None:
    n_draws = 1000
    u = np.asarray(generated_uniform_draws("mlhs", 8, jnp.arange(20), n_draws, 5))
    strata = np.sort(np.floor(u * n_draws), axis=1)
    np.testing.assert_array_equal(strata, np.broadcast_to(np.arange(n_draws)[None, :, None], u.shape))


def test_mlhs_offsets_are_equal_within_person_and_dimension() -> None:
    n_draws = 50
    u = np.asarray(generated_uniform_draws("mlhs", 8, jnp.arange(30), n_draws, 4))
    offsets = u * n_draws - np.floor(u * n_draws)
    np.testing.assert_allclose(offsets, offsets[:, :1, :].repeat(n_draws, axis=1), atol=1e-12)
    # ... but differ between people and between dimensions.
    first = offsets[:, 0, :].ravel()
    assert np.unique(first).size == first.size


def test_mlhs_shuffles_are_independent_across_people_and_dimensions() -> None:
    n_draws = 50
    u = np.asarray(generated_uniform_draws("mlhs", 8, jnp.arange(30), n_draws, 4))
    perms = np.floor(u * n_draws).astype(int).transpose(0, 2, 1).reshape(-1, n_draws)
    assert np.unique(perms, axis=0).shape[0] == perms.shape[0]
    # Rank correlation between dimensions within a person is that of independent permutations:
    # mean 0 and variance 1 / (R - 1) for Spearman's rho.
    rho = [stats.spearmanr(u[i, :, 0], u[i, :, k]).statistic for i in range(30) for k in range(1, 4)]
    assert abs(np.mean(rho)) < 4 / np.sqrt(len(rho) * (n_draws - 1))
    assert 0.5 < np.var(rho) * (n_draws - 1) < 1.6


def test_mlhs_shuffle_is_uniform_over_positions() -> None:
    # Where stratum s lands is uniform over the R positions, for every s (chi-square over 4,000 shuffles).
    n_draws = 8
    u = np.asarray(generated_uniform_draws("mlhs", 4, jnp.arange(1000), n_draws, 4))
    strata = np.floor(u * n_draws).astype(int).transpose(0, 2, 1).reshape(-1, n_draws)
    counts = np.stack([(strata == s).sum(axis=0) for s in range(n_draws)])
    p_values = [stats.chisquare(row).pvalue for row in counts]
    assert min(p_values) > 1e-4


# --------------------------------------------------------------------------------------------------
# Distribution


@pytest.mark.parametrize("kind", KINDS)
def test_normal_draws_fit_the_standard_normal(kind: str) -> None:
    z = np.asarray(generated_normal_draws(kind, 2024, jnp.arange(400), 50, 2))
    values = z.ravel()  # 40,000 values
    assert stats.kstest(values, "norm").pvalue > 1e-3
    se = 1 / np.sqrt(values.size)
    assert abs(values.mean()) < 4 * se
    assert abs(values.var() - 1.0) < 4 * np.sqrt(2) * se
    # Independent across dimensions and people.  Within a person and dimension, MLHS draws are a sample
    # without replacement from R strata, so two of them correlate at -1 / (R - 1); pseudo draws at 0.
    assert abs(np.corrcoef(z[..., 0].ravel(), z[..., 1].ravel())[0, 1]) < 4 * np.sqrt(2) * se
    assert abs(np.corrcoef(z[:-1].ravel(), z[1:].ravel())[0, 1]) < 4 * se
    expected = -1 / (z.shape[1] - 1) if kind == "mlhs" else 0.0
    assert abs(np.corrcoef(z[:, :-1].ravel(), z[:, 1:].ravel())[0, 1] - expected) < 4 * se


def test_mlhs_averages_have_the_error_of_a_randomly_shifted_grid() -> None:
    # With one offset xi per person and dimension, the MLHS average of g(u) = f(ndtri(u)) is a randomly
    # shifted rectangle rule: its error is (xi - 1/2) (g(1) - g(0)) / R + O(R**-2), root mean square
    # (g(1) - g(0)) / (sqrt(12) R), against sd(g) / sqrt(R) for pseudo-random draws.  For the logistic
    # f, E[f(Z)] = 1/2 by symmetry and g(1) - g(0) = 1.
    n_draws, people = 100, jnp.arange(200)
    errors = {}
    for kind in KINDS:
        z = np.asarray(generated_normal_draws(kind, 6, people, n_draws, 1))[..., 0]
        errors[kind] = np.sqrt(np.mean((stats.logistic.cdf(z).mean(axis=1) - 0.5) ** 2))
    assert 0.8 < errors["mlhs"] * np.sqrt(12) * n_draws < 1.2
    sd_g = np.sqrt(stats.norm.expect(lambda x: stats.logistic.cdf(x) ** 2) - 0.25)
    assert 0.8 < errors["pseudo"] * np.sqrt(n_draws) / sd_g < 1.2


# --------------------------------------------------------------------------------------------------
# Antithetic


@pytest.mark.parametrize("kind", KINDS)
def test_antithetic_pairs(kind: str) -> None:
    people = jnp.arange(6)
    z = np.asarray(generated_normal_draws(kind, 3, people, 20, 3, antithetic=True))
    assert z.shape == (6, 20, 3)
    np.testing.assert_array_equal(z[:, 10:], -z[:, :10])
    np.testing.assert_array_equal(z[:, :10] + z[:, 10:], 0.0)
    # The base draws are the plain draws with half as many draws.
    np.testing.assert_array_equal(z[:, :10], np.asarray(generated_normal_draws(kind, 3, people, 10, 3)))


# --------------------------------------------------------------------------------------------------
# 64-bit mode switched off


def test_without_64_bit_mode_same_shuffles_and_nearly_same_uniforms() -> None:
    people = np.arange(6)
    u64 = np.asarray(generated_uniform_draws("mlhs", 9, people, 40, 3))
    p64 = np.asarray(generated_uniform_draws("pseudo", 9, people, 40, 3))
    with jax.enable_x64(False):
        u32 = generated_uniform_draws("mlhs", 9, people, 40, 3)
        p32 = generated_uniform_draws("pseudo", 9, people, 40, 3)
        z32 = generated_normal_draws("mlhs", 9, people, 40, 3, antithetic=True)
        assert u32.dtype == p32.dtype == z32.dtype == np.float32
        u32, p32, z32 = np.asarray(u32), np.asarray(p32), np.asarray(z32)
    assert np.all((u32 > 0) & (u32 < 1)) and np.all(np.isfinite(z32))
    np.testing.assert_array_equal(np.floor(u32 * 40), np.floor(u64 * 40))
    # float32 uniforms use the top 23 bits of w0, float64 ones the top 52 bits of (w0, w1).
    assert np.abs(p32 - p64).max() <= 2.0**-23
    assert np.abs(u32 - u64).max() <= 2.0**-22


# --------------------------------------------------------------------------------------------------
# Argument errors


def test_unknown_kind_lists_generated_draw_types() -> None:
    with pytest.raises(SpecError) as info:
        generated_normal_draws("halton", 0, jnp.arange(3), 10, 2)
    message = str(info.value)
    assert "halton" in message and all(kind in message for kind in KINDS) and "\n" not in message


def test_antithetic_needs_even_number_of_draws() -> None:
    with pytest.raises(SpecError, match="even"):
        generated_normal_draws("pseudo", 0, jnp.arange(3), 7, 2, antithetic=True)


@pytest.mark.parametrize(
    "args",
    [(0, 2), (5, 0), (-1, 2), (2.0, 2), (True, 2), (5, None), (2**31, 2)],
)
def test_bad_sizes(args: tuple) -> None:
    with pytest.raises(SpecError):
        generated_normal_draws("mlhs", 0, jnp.arange(3), *args)


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, None, True, "1"])
def test_bad_seed(seed: object) -> None:
    with pytest.raises(SpecError, match="seed"):
        generated_normal_draws("pseudo", seed, jnp.arange(3), 4, 2)


@pytest.mark.parametrize(
    "people",
    [np.arange(6).reshape(2, 3), np.array([0.0, 1.0]), np.array([True, False]), np.array([-1, 2]), [0, 2**32], 3],
)
def test_bad_people(people: object) -> None:
    with pytest.raises(SpecError, match="people|person"):
        generated_normal_draws("pseudo", 0, people, 4, 2)


@pytest.mark.parametrize("dtype", [jnp.int32, "not a dtype", jnp.complex64])
def test_bad_dtype(dtype: object) -> None:
    with pytest.raises(SpecError, match="dtype"):
        generated_normal_draws("pseudo", 0, jnp.arange(3), 4, 2, dtype=dtype)


def test_antithetic_must_be_bool() -> None:
    with pytest.raises(SpecError, match="antithetic"):
        generated_normal_draws("pseudo", 0, jnp.arange(3), 4, 2, antithetic="yes")
