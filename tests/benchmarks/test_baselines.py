"""Tests of the benchmark baselines: nearest-neighbour gridding and classic GROG.

The synthetic case: a smooth complex phantom (Gaussian blobs with a smooth
phase) on a fine M x M image (M = 2N), 8 smooth complex coil maps, and its
k-space truth on the N x N grid (N = 64) from the centered orthonormal FFT of
the fine image, cropped and scaled by N / M.  Non-Cartesian samples at
arbitrary k come from finufft type 2 on the same fine image (points
2*pi*k/M, isign=-1, scaled by N / M**2), checked against a brute-force DFT and
against the Cartesian truth at integer k.
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
import pytest
import scipy.linalg

from benchmarks.baselines import (
    ClassicGrog,
    GriddingResult,
    fractional_matrix_power,
    grid_nearest_neighbour,
)

finufft = pytest.importorskip("finufft")

N = 64  # target grid
M = 2 * N  # fine image grid
COILS = 8
ACS = 24


# --------------------------------------------------------------------------
# Synthetic case
# --------------------------------------------------------------------------


def _smooth_ellipse(
    xx: np.ndarray, yy: np.ndarray, centre: Tuple[float, float], axes: Tuple[float, float], edge: float
) -> np.ndarray:
    """Ellipse indicator with a tanh edge of width ~``edge`` (FOV units), same shape as ``xx``."""
    radius = np.sqrt(((xx - centre[0]) / axes[0]) ** 2 + ((yy - centre[1]) / axes[1]) ** 2)
    return 0.5 * (1.0 - np.tanh((radius - 1.0) * min(axes) / edge))


def _fine_coil_images(coils: int = COILS) -> np.ndarray:
    """Smooth complex phantom times smooth complex coil maps, (coils, M, M) [iy, ix].

    The phantom (smooth-edged ellipses plus a Gaussian blob, smooth phase)
    lies well inside the field of view; coil maps are Gaussians (sigma 0.2
    FOV) centred on a ring of radius 0.45 FOV with a linear phase each.
    """
    x = (np.arange(M) - M // 2) / M  # position in units of the field of view
    xx, yy = np.meshgrid(x, x, indexing="xy")
    edge = 0.02
    phantom = (
        _smooth_ellipse(xx, yy, (0.0, 0.0), (0.30, 0.36), edge)
        + 0.8j * _smooth_ellipse(xx, yy, (0.08, -0.06), (0.06, 0.08), edge)
        - 0.6 * _smooth_ellipse(xx, yy, (-0.10, 0.08), (0.05, 0.05), edge)
        + (0.5 + 0.5j) * np.exp(-((xx - 0.03) ** 2 + (yy - 0.15) ** 2) / (2 * 0.03**2))
    )
    phantom = phantom * np.exp(1j * np.pi * (0.3 * xx + 0.2 * yy))
    maps = []
    for c in range(coils):
        theta = 2 * np.pi * c / coils
        px, py = 0.45 * np.cos(theta), 0.45 * np.sin(theta)
        magnitude = np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * 0.2**2))
        phase = theta + 2.0 * (xx * np.cos(theta) + yy * np.sin(theta))
        maps.append(magnitude * np.exp(1j * phase))
    return np.asarray(maps) * phantom[None]


def _cartesian_truth(images: np.ndarray) -> np.ndarray:
    """(coils, N, N) k-space truth, index [ky + N//2, kx + N//2]."""
    spectrum = np.fft.fftshift(
        np.fft.fft2(np.fft.ifftshift(images, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    )
    lo = M // 2 - N // 2
    return spectrum[:, lo : lo + N, lo : lo + N] * (N / M)


def _nufft_samples(images: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """(coils, n) k-space of ``images`` at ``coords (n, 2) = (kx, ky)``, ortho N-grid scaling.

    finufft pairs the FIRST array axis (here y) with its first coordinate.
    """
    out = finufft.nufft2d2(
        2 * np.pi * coords[:, 1] / M,
        2 * np.pi * coords[:, 0] / M,
        np.ascontiguousarray(images),
        isign=-1,
        eps=1e-12,
    )
    return out * (N / M**2)


def _dft_samples(images: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Brute-force DFT counterpart of :func:`_nufft_samples` (small n only)."""
    m = np.arange(M) - M // 2
    ex = np.exp(-2j * np.pi * coords[:, 0:1] * m[None, :] / M)  # (n, M) over x
    ey = np.exp(-2j * np.pi * coords[:, 1:2] * m[None, :] / M)  # (n, M) over y
    return np.einsum("cyx,ny,nx->cn", images, ey, ex) * (N / M**2)


def _radial_coords(spokes: int = 48, readout: int = 128) -> np.ndarray:
    """Golden-angle radial spokes, readout spacing 0.5, (spokes * readout, 2)."""
    angles = np.arange(spokes) * np.deg2rad(111.246117975)
    radius = (np.arange(readout) - readout / 2) * (N / readout)
    return np.stack(
        [np.outer(np.cos(angles), radius).ravel(), np.outer(np.sin(angles), radius).ravel()], axis=-1
    )


@pytest.fixture(scope="module")
def case() -> Dict[str, np.ndarray]:
    images = _fine_coil_images()
    truth = _cartesian_truth(images)
    coords = _radial_coords()
    samples = _nufft_samples(images, coords).astype(np.complex64)
    lo = N // 2 - ACS // 2
    acs = truth[:, lo : lo + ACS, lo : lo + ACS]
    return {"images": images, "truth": truth, "coords": coords, "samples": samples, "acs": acs}


def _nrmse_on_hits(kspace: np.ndarray, hits: np.ndarray, truth: np.ndarray) -> float:
    sampled = hits > 0
    return float(np.linalg.norm(kspace[:, sampled] - truth[:, sampled]) / np.linalg.norm(truth[:, sampled]))


# --------------------------------------------------------------------------
# The synthetic case itself
# --------------------------------------------------------------------------


def test_nufft_matches_dft_and_cartesian_truth(case: Dict[str, np.ndarray]) -> None:
    images, truth = case["images"], case["truth"]
    rng = np.random.default_rng(3)
    arbitrary = rng.uniform(-N / 2, N / 2, size=(12, 2))
    dft = _dft_samples(images, arbitrary)
    np.testing.assert_allclose(_nufft_samples(images, arbitrary), dft, rtol=0, atol=1e-9 * np.abs(dft).max())
    integer = np.array([[0, 0], [3, -5], [-32, 31], [17, 4], [-7, -20]], dtype=float)
    expected = truth[:, integer[:, 1].astype(int) + N // 2, integer[:, 0].astype(int) + N // 2]
    np.testing.assert_allclose(
        _nufft_samples(images, integer), expected, rtol=0, atol=1e-9 * np.abs(truth).max()
    )


# --------------------------------------------------------------------------
# Nearest neighbour
# --------------------------------------------------------------------------


def test_nearest_neighbour_layout_mean_and_drops() -> None:
    nx, ny = 6, 4  # non-square to catch a transposed layout
    coords = np.array(
        [
            [0.2, -0.1],  # -> (0, 0)
            [-0.3, 0.4],  # -> (0, 0)
            [2.0, 1.0],  # -> (2, 1)
            [-2.6, -2.4],  # -> (-3, -2): corner [0, 0]
            [2.51, 0.0],  # -> (3, 0): outside (kx range -3..2), dropped
            [0.0, 2.0],  # -> (0, 2): outside (ky range -2..1), dropped
        ]
    )
    samples = np.array([[1 + 1j, 3 - 1j, 5j, -2, 9, 9], [2, 4, 1, 1j, 9, 9]], dtype=np.complex64)
    result = grid_nearest_neighbour(samples, coords, (nx, ny))
    kspace, hits = result
    assert isinstance(result, GriddingResult)
    assert kspace.shape == (2, ny, nx) and kspace.dtype == np.complex64
    assert hits.shape == (ny, nx) and hits.dtype == np.int32
    assert result.n_dropped == 2
    assert hits.sum() == 4
    assert hits[ny // 2, nx // 2] == 2 and hits[ny // 2 + 1, nx // 2 + 2] == 1 and hits[0, 0] == 1
    np.testing.assert_allclose(kspace[:, ny // 2, nx // 2], [2 + 0j, 3 + 0j])
    np.testing.assert_allclose(kspace[:, ny // 2 + 1, nx // 2 + 2], [5j, 1])
    np.testing.assert_allclose(kspace[:, 0, 0], [-2, 1j])
    untouched = hits == 0
    assert np.all(kspace[:, untouched] == 0)


def test_nearest_neighbour_on_grid_is_exact(case: Dict[str, np.ndarray]) -> None:
    truth = case["truth"]
    ky, kx = np.meshgrid(np.arange(N) - N // 2, np.arange(N) - N // 2, indexing="ij")
    coords = np.stack([kx.ravel(), ky.ravel()], axis=-1).astype(float)
    samples = truth.reshape(COILS, -1).astype(np.complex64)
    kspace, hits = grid_nearest_neighbour(samples, coords, (N, N))
    assert np.all(hits == 1)
    np.testing.assert_array_equal(kspace, truth.astype(np.complex64))


# --------------------------------------------------------------------------
# Classic GROG
# --------------------------------------------------------------------------


def test_grog_beats_nearest_neighbour_on_radial(case: Dict[str, np.ndarray]) -> None:
    truth, coords, samples = case["truth"], case["coords"], case["samples"]
    nn_kspace, nn_hits = grid_nearest_neighbour(samples, coords, (N, N))
    grog = ClassicGrog.from_acs(case["acs"], regularization=1e-3)
    grog_result = grog.grid(samples, coords, (N, N))
    grog_kspace, grog_hits = grog_result
    np.testing.assert_array_equal(nn_hits, grog_hits)
    assert grog_result.n_dropped == int(np.count_nonzero(np.rint(coords).max(axis=1) >= N // 2))
    nn_error = _nrmse_on_hits(nn_kspace, nn_hits, truth)
    grog_error = _nrmse_on_hits(grog_kspace, grog_hits, truth)
    # Observed: NN ~0.19, GROG ~0.040.
    assert nn_error > 0.15, nn_error
    assert grog_error < 0.6 * nn_error, (grog_error, nn_error)
    assert grog_error < 0.08, grog_error


def test_grog_zero_shift_returns_sample_exactly(case: Dict[str, np.ndarray]) -> None:
    grog = ClassicGrog.from_acs(case["acs"])
    coords = np.array([[0.0, 0.0], [5.0, -3.0], [-32.0, 31.0]])
    samples = np.array(
        [[1 + 2j, -3.5 + 0.25j, 7.0 - 1j]] * COILS, dtype=np.complex64
    ) * np.arange(1, COILS + 1)[:, None]
    kspace, hits = grog.grid(samples, coords, (N, N))
    idx_y = coords[:, 1].astype(int) + N // 2
    idx_x = coords[:, 0].astype(int) + N // 2
    np.testing.assert_array_equal(kspace[:, idx_y, idx_x], samples)
    assert hits.sum() == 3
    # A shift along one axis only leaves the other operator out entirely.
    shifted = grog.shift(samples[:, :1], np.array([[0.3, 0.0]]))
    np.testing.assert_allclose(shifted, grog.fractional_power("x", 0.3) @ samples[:, :1], rtol=1e-10, atol=1e-10)


def test_grog_identity_operators_equal_nearest_neighbour(case: Dict[str, np.ndarray]) -> None:
    eye = np.eye(COILS)
    grog = ClassicGrog(eye, eye)
    rng = np.random.default_rng(7)
    coords = rng.uniform(-20, 20, size=(500, 2)) * np.array([1.0, 0.5])
    samples = (rng.standard_normal((COILS, 500)) + 1j * rng.standard_normal((COILS, 500))).astype(np.complex64)
    expected_kspace, expected_hits = grid_nearest_neighbour(samples, coords, (40, 24))
    kspace, hits = grog.grid(samples, coords, (40, 24))
    np.testing.assert_array_equal(hits, expected_hits)
    np.testing.assert_allclose(kspace, expected_kspace, rtol=1e-6, atol=1e-6)


def test_grog_exact_on_point_sources() -> None:
    """Coils seeing `coils` point sources: the GRAPPA operators exist exactly.

    s(k) = B e(k), e_j(k) = exp(-2*pi*i k.x_j), so Gx**d = B diag(exp(-2*pi*i d x_j)) B^-1
    for every real d (principal branch as |x_j| < 0.5 FOV); GROG must be exact.
    """
    rng = np.random.default_rng(11)
    coils = 6
    positions = rng.uniform(-0.45, 0.45, size=(coils, 2))
    mixing = rng.standard_normal((coils, coils)) + 1j * rng.standard_normal((coils, coils))

    def signal(k: np.ndarray) -> np.ndarray:
        return mixing @ np.exp(-2j * np.pi * positions @ k.T)

    ky, kx = np.meshgrid(np.arange(16) - 8, np.arange(16) - 8, indexing="ij")
    acs = signal(np.stack([kx.ravel(), ky.ravel()], -1).astype(float)).reshape(coils, 16, 16)
    grog = ClassicGrog.from_acs(acs, regularization=0.0)
    coords = rng.uniform(-15.5, 15.5, size=(300, 2))
    kspace, hits = grog.grid(signal(coords).astype(np.complex64), coords, (32, 32))
    gy, gx = np.meshgrid(np.arange(32) - 16, np.arange(32) - 16, indexing="ij")
    expected = signal(np.stack([gx.ravel(), gy.ravel()], -1).astype(float)).reshape(coils, 32, 32)
    hit = hits > 0
    error = np.linalg.norm(kspace[:, hit] - expected[:, hit]) / np.linalg.norm(expected[:, hit])
    assert error < 1e-5, error


def test_fractional_power_properties(case: Dict[str, np.ndarray]) -> None:
    grog = ClassicGrog.from_acs(case["acs"])
    for axis, operator in (("x", grog.gx), ("y", grog.gy)):
        half = grog.fractional_power(axis, 0.5)
        np.testing.assert_allclose(half @ half, operator, rtol=0, atol=1e-9 * np.abs(operator).max())
        np.testing.assert_allclose(
            grog.fractional_power(axis, 1.0), operator, rtol=0, atol=1e-9 * np.abs(operator).max()
        )
        np.testing.assert_allclose(grog.fractional_power(axis, 0.0), np.eye(COILS), atol=1e-9)
        a, b = 0.37, -0.21
        np.testing.assert_allclose(
            grog.fractional_power(axis, a) @ grog.fractional_power(axis, b),
            grog.fractional_power(axis, a + b),
            atol=1e-9,
        )
        np.testing.assert_allclose(
            fractional_matrix_power(operator, 0.3),
            scipy.linalg.fractional_matrix_power(operator, 0.3),
            atol=1e-8,
        )
    np.testing.assert_allclose(
        grog.shift_operator(0.2, -0.4),
        grog.fractional_power("x", 0.2) @ grog.fractional_power("y", -0.4),
        atol=1e-12,
    )
    # The learned unit shifts predict the ACS neighbours far better than no shift
    # (a 1x1 GRAPPA kernel is only approximate: observed residual ~0.25).
    acs = case["acs"]
    for operator, source, target in (
        (grog.gx, acs[:, :, :-1], acs[:, :, 1:]),
        (grog.gy, acs[:, :-1, :], acs[:, 1:, :]),
    ):
        predicted = np.einsum("ij,jyx->iyx", operator, source)
        residual = np.linalg.norm(predicted - target)
        assert residual < 0.35 * np.linalg.norm(target), residual / np.linalg.norm(target)
        assert residual < 0.5 * np.linalg.norm(source - target)


def test_grid_is_fast_enough() -> None:
    rng = np.random.default_rng(5)
    n = 50_000
    samples = (rng.standard_normal((COILS, n)) + 1j * rng.standard_normal((COILS, n))).astype(np.complex64)
    coords = rng.uniform(-N / 2, N / 2, size=(n, 2))
    acs = rng.standard_normal((COILS, ACS, ACS)) + 1j * rng.standard_normal((COILS, ACS, ACS))
    grog = ClassicGrog.from_acs(acs)
    import time

    start = time.perf_counter()
    grid_nearest_neighbour(samples, coords, (N, N))
    grog.grid(samples, coords, (N, N))
    assert time.perf_counter() - start < 2.0  # typically ~0.15 s; generous for loaded CI


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "samples_shape, coords_shape, matrix, match",
    [
        ((8,), (8, 2), (16, 16), r"samples must have shape \(coils, n\).*\(8,\)"),
        ((2, 8, 1), (8, 2), (16, 16), r"samples must have shape \(coils, n\).*\(2, 8, 1\)"),
        ((2, 8), (8, 3), (16, 16), r"coords must have shape \(n, 2\).*\(8, 3\)"),
        ((2, 8), (7, 2), (16, 16), r"coords has 7 rows.*samples has 8"),
        ((2, 8), (8, 2), (16,), r"matrix.*\(nx, ny\).*1 entries"),
        ((2, 8), (8, 2), (16, 0), r"matrix ny must be >= 1, got 0"),
        ((2, 8), (8, 2), (16.5, 16), r"matrix nx must be a positive integer, got 16.5"),
        ((2, 8), (8, 2), 16, r"matrix must be a pair"),
    ],
)
def test_bad_input_raises(samples_shape, coords_shape, matrix, match) -> None:
    samples = np.ones(samples_shape, dtype=np.complex64)
    coords = np.zeros(coords_shape)
    with pytest.raises(ValueError, match=match):
        grid_nearest_neighbour(samples, coords, matrix)
    grog = ClassicGrog(np.eye(2), np.eye(2))
    with pytest.raises(ValueError, match=match):
        grog.grid(samples, coords, matrix)


def test_bad_values_and_grog_shapes_raise() -> None:
    samples = np.ones((2, 3), dtype=np.complex64)
    with pytest.raises(ValueError, match="coords must be finite; 1 of 3"):
        grid_nearest_neighbour(samples, np.array([[0, 0], [np.nan, 1], [1, 1]]), (8, 8))
    with pytest.raises(ValueError, match="coords must be real-valued"):
        grid_nearest_neighbour(samples, np.zeros((3, 2), dtype=complex), (8, 8))
    with pytest.raises(ValueError, match=r"acs must have shape \(coils, ny_acs, nx_acs\).*\(4, 24\)"):
        ClassicGrog.from_acs(np.ones((4, 24)))
    with pytest.raises(ValueError, match=r"acs must have shape.*\(4, 1, 24\)"):
        ClassicGrog.from_acs(np.ones((4, 1, 24)))
    with pytest.raises(ValueError, match="regularization must be a finite real >= 0, got -1"):
        ClassicGrog.from_acs(np.ones((2, 4, 4)), regularization=-1.0)
    with pytest.raises(ValueError, match=r"gx must be square.*\(2, 3\)"):
        ClassicGrog(np.ones((2, 3)), np.eye(2))
    with pytest.raises(ValueError, match=r"gx and gy must have the same shape"):
        ClassicGrog(np.eye(2), np.eye(3))
    grog = ClassicGrog(np.eye(3), np.eye(3))
    with pytest.raises(ValueError, match=r"samples has 2 coils \(shape \(2, 3\)\).*\(3, 3\)"):
        grog.grid(samples, np.zeros((3, 2)), (8, 8))
    with pytest.raises(ValueError, match=r"shifts must have shape \(n, 2\).*\(3, 1\)"):
        grog.shift(np.ones((3, 3)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="axis must be 'x' or 'y'"):
        grog.fractional_power("z", 0.5)
    with pytest.raises(ValueError, match=r"matrix must be square \(c, c\).*\(2, 3\)"):
        fractional_matrix_power(np.ones((2, 3)), 0.5)
