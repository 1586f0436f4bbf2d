"""Forward model of the simulator: NUFFT vs brute force, Cartesian truth, B0, noise."""

from __future__ import annotations

import numpy as np
import pytest

from igrog_gadget.simulate import (
    cartesian_kspace,
    coil_sensitivities,
    complex_noise,
    direct_forward,
    fft2c,
    forward_b0,
    ifft2c,
    nufft_forward,
    phantom,
    smooth_b0_map,
)
from igrog_gadget.simulate.acquire import noise_covariance, time_segment_coefficients

N = 16
M = 2 * N


@pytest.fixture(scope="module")
def coil_images() -> np.ndarray:
    return coil_sensitivities(3, M) * phantom(M)[None]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_nufft_matches_brute_force_dft(coil_images: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    k = rng.uniform(-N / 2, N / 2, size=(60, 2))
    fast = nufft_forward(coil_images, k, N)
    slow = direct_forward(coil_images, k, N)
    assert fast.shape == (3, 60)
    assert _rel(fast, slow) < 1e-7
    # A single 2D image gives a 1D result.
    assert _rel(nufft_forward(coil_images[1], k, N), slow[1]) < 1e-7


def test_nufft_axis_order_kx_is_last_axis() -> None:
    # A pure x-modulation only depends on kx.
    img = np.zeros((M, M), dtype=complex)
    img[M // 2, M // 2 + 3] = 1.0  # r = (x=3, y=0)
    k = np.array([[0.25, 0.0], [0.0, 0.25]])
    got = nufft_forward(img, k, N) * (M**2 / N)
    np.testing.assert_allclose(got, [np.exp(-2j * np.pi * 0.25 * 3 / M), 1.0], atol=1e-9)


def test_cartesian_truth_equals_nufft_at_integer_k(coil_images: np.ndarray) -> None:
    ky, kx = np.meshgrid(np.arange(N) - N // 2, np.arange(N) - N // 2, indexing="ij")
    k = np.stack([kx.ravel(), ky.ravel()], axis=-1).astype(float)
    truth = cartesian_kspace(coil_images, N)
    assert truth.shape == (3, N, N)
    np.testing.assert_allclose(nufft_forward(coil_images, k, N).reshape(3, N, N), truth, atol=1e-8)


def test_truth_scaling_constant_object() -> None:
    # A constant object of value 2 -> orthonormal IFFT of the N-grid truth is 2 everywhere.
    truth = cartesian_kspace(np.full((M, M), 2.0 + 0j), N)
    assert truth[N // 2, N // 2] == pytest.approx(2.0 * N)
    np.testing.assert_allclose(ifft2c(truth), 2.0, atol=1e-12)


def test_truth_image_magnitude_matches_fine_object() -> None:
    x = phantom(256)
    image = ifft2c(cartesian_kspace(x, 128))
    inner = np.abs(x[::2, ::2])
    assert abs(np.abs(image).mean() / inner.mean() - 1) < 0.01


def test_fft_roundtrip() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2, 8, 8)) + 1j * rng.standard_normal((2, 8, 8))
    np.testing.assert_allclose(ifft2c(fft2c(a)), a, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(fft2c(a)), np.linalg.norm(a))


def test_b0_forward_matches_brute_force(coil_images: np.ndarray) -> None:
    rng = np.random.default_rng(2)
    n = 80
    k = rng.uniform(-N / 2, N / 2, size=(n, 2))
    t = np.round(rng.uniform(0.0, 10e-3, size=n), 6)  # up to a 10 ms readout
    b0 = smooth_b0_map(M, 60.0)
    fast = forward_b0(coil_images, k, t, b0, N)
    slow = direct_forward(coil_images, k, N, times_s=t, b0_hz=b0)
    assert _rel(fast, slow) < 1e-4
    # and the field actually matters
    assert _rel(nufft_forward(coil_images, k, N), slow) > 1e-2


def test_b0_forward_zero_field_equals_nufft(coil_images: np.ndarray) -> None:
    k = np.array([[0.0, 0.0], [1.5, -2.25], [-7.0, 3.0]])
    got = forward_b0(coil_images, k, np.array([0.0, 1e-3, 5e-3]), np.zeros((M, M)), N)
    np.testing.assert_allclose(got, nufft_forward(coil_images, k, N), atol=1e-10)


def test_time_segmentation_interpolator_accuracy() -> None:
    t = np.arange(500) * 20e-6
    segmentation = time_segment_coefficients(t, -30.0, 80.0, tol=1e-7)
    tau, coeffs, fc = segmentation.tau_s, segmentation.coefficients, segmentation.centre_hz
    assert fc == 25.0
    f = np.linspace(-30.0, 80.0, 37)
    approx = np.exp(-2j * np.pi * (f[:, None] - fc) * tau[None, :]) @ coeffs
    np.testing.assert_allclose(approx, np.exp(-2j * np.pi * f[:, None] * t[None, :]), atol=1e-6)
    assert len(tau) < 20


def test_smooth_b0_map() -> None:
    b0 = smooth_b0_map(64, 50.0)
    assert b0.shape == (64, 64)
    assert np.abs(b0).max() == pytest.approx(50.0, rel=0.02)
    # fine and coarse maps are the same function at common pixel centres
    np.testing.assert_allclose(smooth_b0_map(128, 50.0)[::2, ::2], b0, atol=1e-9)
    assert not np.any(smooth_b0_map(16, 0.0))
    with pytest.raises(ValueError, match="max_hz"):
        smooth_b0_map(16, -1.0)


def test_complex_noise_std() -> None:
    rng = np.random.default_rng(3)
    n = complex_noise((4, 200_000), 0.3, rng)
    assert np.sqrt(np.mean(np.abs(n) ** 2)) == pytest.approx(0.3, rel=0.01)
    assert np.std(n.real) == pytest.approx(0.3 / np.sqrt(2), rel=0.01)
    assert abs(np.mean(n)) < 0.01
    corr = complex_noise((4, 200_000), 1.0, rng, correlation=0.3)
    cov = corr @ corr.conj().T / corr.shape[1]
    np.testing.assert_allclose(cov, noise_covariance(4, 1.0, 0.3), atol=0.02)
    with pytest.raises(ValueError, match="std"):
        complex_noise((2, 2), -1.0, rng)


def test_k_beyond_fine_grid_rejected(coil_images: np.ndarray) -> None:
    with pytest.raises(ValueError, match="M/2"):
        nufft_forward(coil_images, np.array([[M / 2, 0.0]]), N)


# --- the same forward model on a 3D grid --------------------------------------------------------
SHAPE_3D = (6, 8, 10)  # (nz, ny, nx): anisotropic, so an axis mix-up shows
FINE_3D = tuple(2 * n for n in SHAPE_3D)


@pytest.fixture(scope="module")
def volume_coil_images() -> np.ndarray:
    return coil_sensitivities(5, FINE_3D) * phantom(FINE_3D)[None]


def test_3d_nufft_and_b0_forward_match_brute_force(volume_coil_images: np.ndarray) -> None:
    rng = np.random.default_rng(5)
    k = rng.uniform(-0.5, 0.5, size=(40, 3)) * np.array(SHAPE_3D[::-1])  # (kx, ky, kz) within each axis
    slow = direct_forward(volume_coil_images, k, SHAPE_3D)
    fast = nufft_forward(volume_coil_images, k, SHAPE_3D)
    assert fast.shape == (5, 40) and _rel(fast, slow) < 1e-6
    t = np.round(rng.uniform(0.0, 5e-3, size=40), 6)
    b0 = smooth_b0_map(FINE_3D, 40.0)
    assert _rel(forward_b0(volume_coil_images, k, t, b0, SHAPE_3D), direct_forward(volume_coil_images, k, SHAPE_3D, t, b0)) < 1e-4


def test_3d_cartesian_truth_equals_nufft_at_integer_k(volume_coil_images: np.ndarray) -> None:
    kz, ky, kx = np.meshgrid(*(np.arange(n) - n // 2 for n in SHAPE_3D), indexing="ij")
    k = np.stack([kx.ravel(), ky.ravel(), kz.ravel()], axis=-1).astype(float)
    truth = cartesian_kspace(volume_coil_images, SHAPE_3D)
    assert truth.shape == (5, *SHAPE_3D)
    np.testing.assert_allclose(nufft_forward(volume_coil_images, k, SHAPE_3D).reshape(truth.shape), truth, atol=1e-7)


def test_3d_b0_map_is_the_same_function_on_fine_and_coarse_grids() -> None:
    b0 = smooth_b0_map(SHAPE_3D, 50.0)
    assert b0.shape == SHAPE_3D and np.abs(b0).max() <= 50.0
    np.testing.assert_allclose(smooth_b0_map(FINE_3D, 50.0)[::2, ::2, ::2], b0, atol=1e-9)
