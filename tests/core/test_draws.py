"""Tests of gradfit.core.draws against independent truths (textbook values, scipy, sampling theory)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import qmc

from gradfit.core.draws import (
    DRAW_TYPES,
    HALTON_SKIP,
    _halton_points,
    _owen_scramble,
    _radical_inverse,
    _sobol_integers,
    normal_draws,
    uniform_draws,
)
from gradfit.errors import SpecError

SEEDED = ("pseudo", "scrambled_halton", "sobol", "mlhs")
QMC = ("halton", "scrambled_halton", "sobol")
PRIMES = (2, 3, 5, 7, 11, 13)


def textbook_radical_inverse(index: int, base: int) -> Fraction:
    """Van der Corput radical inverse, digit by digit with exact fractions."""
    value, scale = Fraction(0), Fraction(1, base)
    while index:
        index, digit = divmod(index, base)
        value += digit * scale
        scale /= base
    return value


# --------------------------------------------------------------------------------------------------
# Shapes, range, reproducibility


@pytest.mark.parametrize("kind", DRAW_TYPES)
def test_shape_dtype_and_open_unit_interval(kind: str) -> None:
    u = uniform_draws(kind, 7, 33, 4, seed=1)
    assert u.shape == (7, 33, 4)
    assert u.dtype == np.float64
    assert np.all(u > 0.0) and np.all(u < 1.0)
    z = normal_draws(kind, 7, 33, 4, seed=1)
    assert z.shape == (7, 33, 4) and z.dtype == np.float64
    assert np.all(np.isfinite(z))


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(DRAW_TYPES),
    n_people=st.integers(1, 6),
    n_draws=st.integers(1, 40),
    dim=st.integers(1, 7),
    seed=st.integers(0, 2**40),
)
def test_any_size_is_in_open_unit_interval(kind: str, n_people: int, n_draws: int, dim: int, seed: int) -> None:
    u = uniform_draws(kind, n_people, n_draws, dim, seed=seed)
    assert u.shape == (n_people, n_draws, dim)
    assert np.all((u > 0.0) & (u < 1.0))


@pytest.mark.parametrize("kind", DRAW_TYPES)
def test_same_seed_same_draws(kind: str) -> None:
    np.testing.assert_array_equal(uniform_draws(kind, 5, 20, 3, seed=42), uniform_draws(kind, 5, 20, 3, seed=42))


@pytest.mark.parametrize("kind", SEEDED)
def test_different_seeds_differ_in_every_dimension(kind: str) -> None:
    a = uniform_draws(kind, 5, 20, 3, seed=1)
    b = uniform_draws(kind, 5, 20, 3, seed=2)
    # Every dimension is randomised (for scrambled Halton this includes base 2).
    assert all(not np.array_equal(a[..., j], b[..., j]) for j in range(3))


def test_halton_ignores_seed() -> None:
    np.testing.assert_array_equal(uniform_draws("halton", 3, 10, 2, seed=0), uniform_draws("halton", 3, 10, 2, seed=9))


@pytest.mark.parametrize("kind", QMC)
def test_one_sequence_shared_out_person_by_person(kind: str) -> None:
    """Person i gets points [i * R, (i + 1) * R) of one long sequence (Train 2009, sec. 9.3.3)."""
    by_person = uniform_draws(kind, 6, 50, 3, seed=5)
    one_long = uniform_draws(kind, 1, 300, 3, seed=5)[0]
    np.testing.assert_array_equal(by_person.reshape(300, 3), one_long)


# --------------------------------------------------------------------------------------------------
# Halton


def test_halton_radical_inverse_textbook_values() -> None:
    seq = _halton_points(8, 2, skip=0, rng=None)
    np.testing.assert_array_equal(seq[:, 0], [1 / 2, 1 / 4, 3 / 4, 1 / 8, 5 / 8, 3 / 8, 7 / 8, 1 / 16])
    np.testing.assert_allclose(seq[:, 1], [1 / 3, 2 / 3, 1 / 9, 4 / 9, 7 / 9, 2 / 9, 5 / 9, 8 / 9], rtol=0, atol=1e-16)


def test_halton_draws_skip_the_first_points() -> None:
    n_people, n_draws = 3, 4
    u = uniform_draws("halton", n_people, n_draws, len(PRIMES))
    for i in range(n_people):
        for r in range(n_draws):
            index = HALTON_SKIP + 1 + i * n_draws + r  # the sequence starts at index 1 = 1/2 in base 2
            expected = [float(textbook_radical_inverse(index, b)) for b in PRIMES]
            np.testing.assert_allclose(u[i, r], expected, rtol=0, atol=1e-15)
    # Base 2 at index 11 = 0b1011 -> 0.1101 in binary.
    assert u[0, 0, 0] == 13 / 16


def test_halton_matches_scipy_unscrambled() -> None:
    sampler = qmc.Halton(8, scramble=False)
    sampler.fast_forward(HALTON_SKIP + 1)  # scipy's point 0 is index 0 (the origin)
    expected = sampler.random(20_000)
    got = uniform_draws("halton", 100, 200, 8).reshape(-1, 8)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("base", [2, 3, 29, 4099])
def test_radical_inverse_at_large_indices(base: int) -> None:
    start = 987_654_321
    got = _radical_inverse(start, 3000, base, rng=None)
    expected = [float(textbook_radical_inverse(start + k, base)) for k in range(3000)]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize(("base", "digits"), [(2, 10), (3, 6), (5, 4), (7, 3)])
def test_scrambled_halton_keeps_van_der_corput_stratification(base: int, digits: int) -> None:
    """A block of b**k indices aligned on b**k has every k-digit ending once; permuting digit positions
    maps that onto every interval of width b**-k once."""
    n = base**digits
    for seed in range(3):
        u = _radical_inverse(n, n, base, rng=np.random.default_rng(seed))
        np.testing.assert_array_equal(np.sort(np.floor(u * n)), np.arange(n))
        assert np.all((u > 0) & (u < 1))


# --------------------------------------------------------------------------------------------------
# Sobol with Owen scrambling


@pytest.mark.parametrize("n_points", [1, 100, 4096, 4097, 3 * 4096 + 17, 2**16])
def test_sobol_integers_match_scipy(n_points: int) -> None:
    m = max(0, (n_points - 1).bit_length())
    expected = qmc.Sobol(9, scramble=False, bits=32).random_base2(m)[:n_points]
    np.testing.assert_array_equal(_sobol_integers(n_points, 9), (expected * 2.0**32).astype(np.uint32))


@pytest.mark.parametrize("m", [4, 8, 12])
def test_sobol_owen_one_dimensional_stratification(m: int) -> None:
    n = 2**m
    for seed in range(3):
        u = uniform_draws("sobol", 1, n, 6, seed=seed)[0]
        for j in range(6):
            np.testing.assert_array_equal(np.sort(np.floor(u[:, j] * n)), np.arange(n))


def test_sobol_owen_two_dimensional_net() -> None:
    """The first two Sobol dimensions form a (0, m, 2)-net, which Owen scrambling preserves: every
    elementary box of size 2**-a by 2**-(m - a) holds exactly one of the first 2**m points."""
    m = 10
    u = uniform_draws("sobol", 4, 2**m // 4, 2, seed=11).reshape(-1, 2)
    for a in range(m + 1):
        cell = np.floor(u[:, 0] * 2**a) * 2 ** (m - a) + np.floor(u[:, 1] * 2 ** (m - a))
        np.testing.assert_array_equal(np.sort(cell), np.arange(2**m))


def test_owen_scramble_variance_matches_theory() -> None:
    """For Owen-scrambled n = 2**m points, the mean of 2u is stratified sampling with one point per
    interval of width 1/n, whose variance is 1 / (3 n**3); a weak hash shows up as a ratio far from 1."""
    rng = np.random.default_rng(123)
    for m in (6, 10):
        n = 2**m
        integers = _sobol_integers(n, 4)
        errors = []
        for _ in range(300):
            seeds = rng.integers(0, 2**32, size=4, dtype=np.uint64).astype(np.uint32)
            u = (_owen_scramble(integers, seeds) + 0.5) / 2.0**32
            errors.append(2 * u.mean(axis=0) - 1)
        ratio = np.mean(np.square(errors)) * 3 * n**3  # 1200 squared errors: sd of the ratio about 0.04
        assert 0.8 < ratio < 1.25, (m, ratio)


def test_sobol_owen_integrates_smooth_function_far_better_than_pseudo() -> None:
    def rmse(kind: str) -> float:
        errors = []
        for seed in range(10):
            u = uniform_draws(kind, 16, 256, 5, seed=seed).reshape(-1, 5)
            errors.append(np.prod(2.0 * u, axis=1).mean() - 1.0)  # exact integral: 1
        return float(np.sqrt(np.mean(np.square(errors))))

    sobol, pseudo = rmse("sobol"), rmse("pseudo")
    # Sampling theory: pseudo RMSE = sqrt((4/3)**5 - 1) / 64 = 0.028; Owen-Sobol is about 30 times smaller.
    assert 0.01 < pseudo < 0.05
    assert sobol < 2e-3
    assert sobol < pseudo / 10


# --------------------------------------------------------------------------------------------------
# MLHS


def test_mlhs_one_draw_per_stratum() -> None:
    n_draws = 37
    u = uniform_draws("mlhs", 50, n_draws, 3, seed=4)
    edges = np.arange(n_draws + 1) / n_draws
    stratum = np.searchsorted(edges, u, side="right") - 1  # r such that edges[r] <= u < edges[r + 1]
    expected = np.broadcast_to(np.arange(n_draws)[None, :, None], u.shape)
    np.testing.assert_array_equal(np.sort(stratum, axis=1), expected)
    # Shuffled independently: the orders differ between people and between dimensions.
    assert not np.array_equal(stratum[0, :, 0], stratum[1, :, 0])
    assert not np.array_equal(stratum[0, :, 0], stratum[0, :, 1])


def test_mlhs_offsets_are_equal_within_person_and_dimension() -> None:
    """u_r = (r - 1 + xi) / R with one xi per person and dimension."""
    n_draws = 20
    u = np.sort(uniform_draws("mlhs", 30, n_draws, 2, seed=8), axis=1)
    xi = u * n_draws - np.arange(n_draws)[:, None]
    np.testing.assert_allclose(xi, np.broadcast_to(xi[:, :1, :], xi.shape), atol=1e-12)
    assert np.all((xi >= 0) & (xi < 1))
    assert np.std(xi[:, 0, :]) > 0.1  # and xi varies between people


# --------------------------------------------------------------------------------------------------
# Normal draws and their moments


@pytest.mark.parametrize(
    ("kind", "tol"),
    [("pseudo", 6e-3), ("mlhs", 2e-3), ("halton", 5e-4), ("scrambled_halton", 5e-4), ("sobol", 5e-4)],
)
def test_normal_draws_mean_and_variance(kind: str, tol: float) -> None:
    # 600,000 values per dimension: pseudo-random standard errors 1.3e-3 (mean) and 1.8e-3 (variance).
    z = normal_draws(kind, 2000, 100, 3, seed=7)
    np.testing.assert_allclose(z.mean(axis=(0, 1)), 0.0, atol=tol)
    np.testing.assert_allclose(z.var(axis=(0, 1)), 1.0, atol=1.5 * tol)


@pytest.mark.parametrize("kind", DRAW_TYPES)
def test_normal_draws_are_ndtri_of_uniform_draws(kind: str) -> None:
    from scipy.stats import norm

    u = uniform_draws(kind, 4, 25, 3, seed=3)
    np.testing.assert_allclose(normal_draws(kind, 4, 25, 3, seed=3), norm.ppf(u), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", DRAW_TYPES)
def test_antithetic_pairs(kind: str) -> None:
    z = normal_draws(kind, 9, 40, 3, seed=2, antithetic=True)
    assert z.shape == (9, 40, 3)
    base = normal_draws(kind, 9, 20, 3, seed=2)
    np.testing.assert_array_equal(z[:, :20], base)
    np.testing.assert_array_equal(z[:, 20:], -base)
    # Each pair cancels exactly, so every person's draws sum to exactly zero.
    assert np.all(z[:, :20] + z[:, 20:] == 0.0)
    np.testing.assert_allclose(z.mean(axis=1), 0.0, atol=1e-15)


# --------------------------------------------------------------------------------------------------
# Errors


def test_unknown_kind_lists_draw_types() -> None:
    with pytest.raises(SpecError) as info:
        uniform_draws("latin", 2, 3, 1)
    message = str(info.value)
    assert "\n" not in message
    assert all(kind in message for kind in DRAW_TYPES)
    with pytest.raises(SpecError):
        normal_draws("latin", 2, 4, 1, antithetic=True)


def test_antithetic_needs_even_number_of_draws() -> None:
    with pytest.raises(SpecError, match="even"):
        normal_draws("sobol", 2, 7, 1, antithetic=True)


@pytest.mark.parametrize(
    "args",
    [(0, 3, 1), (2, 0, 1), (2, 3, 0), (-1, 3, 1), (2, 3.0, 1), (2, True, 1), (2, 3, "2")],
)
@pytest.mark.parametrize("kind", DRAW_TYPES)
def test_bad_sizes(kind: str, args: tuple) -> None:
    with pytest.raises(SpecError):
        uniform_draws(kind, *args)


@pytest.mark.parametrize("seed", [-1, 1.5, None])
def test_bad_seed(seed: object) -> None:
    with pytest.raises(SpecError):
        uniform_draws("pseudo", 2, 3, 1, seed=seed)  # type: ignore[arg-type]
