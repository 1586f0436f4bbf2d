"""Noise prewhitening and PCA coil compression."""

from __future__ import annotations

import numpy as np
import pytest

from igrog_gadget.errors import InputDataError
from igrog_gadget.numerics.coils import (
    CoilTransform,
    NoiseCovariance,
    compression_transform,
    noise_prewhitener,
    noise_std_of,
)


def correlated_noise(coils: int, samples: int, rho: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(noise (coils, samples), its covariance) with cov[i, j] = rho^|i-j|."""
    index = np.arange(coils)
    covariance = rho ** np.abs(index[:, None] - index[None, :]).astype(float)
    white = (rng.standard_normal((coils, samples)) + 1j * rng.standard_normal((coils, samples))) / np.sqrt(2)
    return np.linalg.cholesky(covariance) @ white, covariance


def test_noise_covariance_accumulates_readouts_exactly():
    rng = np.random.default_rng(1)
    noise, _ = correlated_noise(6, 3000, 0.4, rng)
    running = NoiseCovariance()
    for part in np.split(noise, 3, axis=1):
        running.add(part)
    np.testing.assert_allclose(running.covariance(6), noise @ noise.conj().T / 3000, rtol=1e-10)
    assert running.covariance(5) is None  # another coil count: no prewhitening


def test_noise_scans_at_another_dwell_are_scaled_to_the_readouts():
    """White noise's variance goes with the sampling bandwidth: noise scans at 5 us per sample
    give the covariance of readouts at 2.5 us twice their own (of readouts at 10 us, half); an
    unknown dwell on either side, or noise scans of different dwells, leave it as measured."""
    rng = np.random.default_rng(3)
    noise, _ = correlated_noise(4, 4000, 0.3, rng)
    measured = noise @ noise.conj().T / 4000
    running = NoiseCovariance()
    running.add(noise[:, :2000], dwell_us=5.0)
    running.add(noise[:, 2000:], dwell_us=5.0)
    np.testing.assert_allclose(running.covariance(4, dwell_us=2.5), 2 * measured, rtol=1e-10)
    np.testing.assert_allclose(running.covariance(4, dwell_us=10.0), 0.5 * measured, rtol=1e-10)
    np.testing.assert_allclose(running.covariance(4), measured, rtol=1e-10)
    running.add(noise[:, :10], dwell_us=2.0)  # a third scan at another dwell: no single one to scale from
    assert running.dwell_us == 0.0
    unknown = NoiseCovariance()
    unknown.add(noise)
    np.testing.assert_allclose(unknown.covariance(4, dwell_us=2.5), measured, rtol=1e-10)


def test_the_noise_covariance_follows_the_data_into_virtual_coils():
    """``covariance_to_virtual``: the covariance of the compressed noise, prewhitening included."""
    rng = np.random.default_rng(4)
    noise, covariance = correlated_noise(8, 200000, 0.5, rng)
    signal = rng.standard_normal((8, 3)) @ (rng.standard_normal((3, 5000)) + 1j * rng.standard_normal((3, 5000)))
    transform = compression_transform(signal.astype(np.complex64), 3, 0.99, noise_prewhitener(covariance))
    compressed = transform.to_virtual(noise).astype(np.complex128)
    np.testing.assert_allclose(
        transform.covariance_to_virtual(covariance), compressed @ compressed.conj().T / noise.shape[1], atol=0.02
    )
    assert noise_std_of(transform.covariance_to_virtual(covariance)) == pytest.approx(noise_std_of(covariance), rel=0.01)


def test_prewhitener_decorrelates_noise_and_keeps_its_level():
    rng = np.random.default_rng(2)
    noise, covariance = correlated_noise(8, 200000, 0.6, rng)
    whitened = noise_prewhitener(covariance) @ noise
    empirical = whitened @ whitened.conj().T / noise.shape[1]
    np.testing.assert_allclose(empirical, np.eye(8), atol=0.02)


def test_singular_noise_covariance_is_a_clear_error():
    covariance = np.ones((4, 4), dtype=complex)  # four copies of one channel
    with pytest.raises(InputDataError, match="not positive definite.*gridding.prewhiten = false"):
        noise_prewhitener(covariance)


def test_zero_noise_scans_are_a_clear_error():
    with pytest.raises(InputDataError, match="no usable noise"):
        noise_prewhitener(np.zeros((3, 3), dtype=complex))


def test_pca_keeps_the_signal_subspace():
    """16 channels mixing 4 sources: the energy rule keeps 4 virtual coils and loses nothing."""
    rng = np.random.default_rng(3)
    mixing = rng.standard_normal((16, 4)) + 1j * rng.standard_normal((16, 4))
    sources = rng.standard_normal((4, 5000)) + 1j * rng.standard_normal((4, 5000))
    data = mixing @ sources + 1e-4 * rng.standard_normal((16, 5000))
    transform = compression_transform(data, 0, 0.9999)
    assert transform.num_virtual == 4
    assert transform.kept_energy > 0.9999
    restored = transform.to_physical(transform.to_virtual(data))
    assert np.linalg.norm(restored - data) / np.linalg.norm(data) < 1e-3
    fixed = compression_transform(data, 6, 0.5)
    assert fixed.num_virtual == 6


def test_compression_after_prewhitening_is_an_oblique_projection_in_physical_coils():
    rng = np.random.default_rng(4)
    noise, covariance = correlated_noise(6, 20000, 0.5, rng)
    mixing = rng.standard_normal((6, 2)) + 1j * rng.standard_normal((6, 2))
    signal = mixing @ (rng.standard_normal((2, 4000)) + 1j * rng.standard_normal((2, 4000)))
    transform = compression_transform(signal, 2, 1.0, noise_prewhitener(covariance))
    assert transform.prewhitened and transform.num_virtual == 2
    np.testing.assert_allclose(transform.to_physical(transform.to_virtual(signal)), signal, atol=1e-3 * np.abs(signal).max())
    projector = transform.expand @ transform.compress
    np.testing.assert_allclose(projector @ projector, projector, atol=1e-4)


def test_identity_transform():
    transform = CoilTransform.identity(3)
    assert transform.is_identity and transform.num_virtual == 3
    data = np.arange(6, dtype=np.complex64).reshape(3, 2)
    np.testing.assert_array_equal(transform.to_virtual(data), data)


@pytest.mark.parametrize("prewhiten", [False, True])
def test_kept_noise_share_is_the_noise_power_that_passes_through_the_virtual_coils(prewhiten):
    """``kept_noise_share``: the share of the physical noise's power left after compressing and
    expanding (the physical output of virtual-coil gridding), against the noise itself: 3 of 8
    white coils keep 3 / 8; correlated noise and a prewhitened (oblique) compression their own."""
    rng = np.random.default_rng(6)
    noise, covariance = correlated_noise(8, 200000, 0.5 if prewhiten else 0.0, rng)
    signal = rng.standard_normal((8, 3)) @ (rng.standard_normal((3, 5000)) + 1j * rng.standard_normal((3, 5000)))
    transform = compression_transform(signal.astype(np.complex64), 3, 0.99, noise_prewhitener(covariance) if prewhiten else None)
    kept = transform.to_physical(transform.to_virtual(noise)).astype(np.complex128)
    measured = float(np.sum(np.abs(kept) ** 2) / np.sum(np.abs(noise) ** 2))
    assert transform.kept_noise_share(covariance) == pytest.approx(measured, rel=0.02)
    if not prewhiten:
        assert transform.kept_noise_share() == pytest.approx(3 / 8, rel=1e-5)
    assert CoilTransform.identity(8).kept_noise_share(covariance) == 1.0


@pytest.mark.parametrize("prewhiten", [False, True])
def test_the_complement_holds_what_the_virtual_coils_discard(prewhiten):
    """``complement``: physical - virtual orthonormal channels that, expanded, give back exactly
    the part of the data the virtual coils do not (``I - expand @ compress``), for a plain and a
    prewhitened (oblique) compression; none for a compression that keeps every channel."""
    rng = np.random.default_rng(7)
    _, covariance = correlated_noise(8, 1000, 0.5 if prewhiten else 0.0, rng)
    data = rng.standard_normal((8, 4000)) + 1j * rng.standard_normal((8, 4000))
    transform = compression_transform(data.astype(np.complex64), 3, 0.99, noise_prewhitener(covariance) if prewhiten else None)
    complement = transform.complement()
    assert (complement.num_virtual, complement.num_physical) == (5, 8)
    compress = complement.compress.astype(np.complex128)
    np.testing.assert_allclose(compress @ compress.conj().T, np.eye(5), atol=1e-5)
    rebuilt = transform.to_physical(transform.to_virtual(data)) + complement.to_physical(complement.to_virtual(data))
    np.testing.assert_allclose(rebuilt, data, atol=1e-4 * np.abs(data).max())
    if prewhiten:  # the kept part alone is not the data
        assert np.abs(transform.to_physical(transform.to_virtual(data)) - data).max() > 0.1
    assert transform.complement().kept_energy == pytest.approx(1 - transform.kept_energy)
    assert compression_transform(data.astype(np.complex64), 8, 0.99, noise_prewhitener(covariance)).complement().num_virtual == 0
