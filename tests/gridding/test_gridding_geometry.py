"""Sample geometry, calibration blocks, off-grid interpolation and kernel application."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from igrog_gadget.core.kernels import average_on_grid, gather_sources, grid_with_kernels
from igrog_gadget.core.plan import KernelChunks
from igrog_gadget.errors import CalibrationError, InputDataError
from igrog_gadget.numerics.calibration import (
    OffGridInterpolator,
    acs_from_cartesian_lines,
    centre_coverage,
    self_calibrate,
)
from igrog_gadget.numerics.geometry import add_neighbour_sources, build_geometry, nearest_grid_points, source_windows
from igrog_gadget.numerics.fft import centred_fft2
from igrog_gadget.numerics.nufft import nufft_adjoint, nufft_forward


def smooth_coil_kspace(coils: int = 3, n: int = 64, seed: int = 0) -> np.ndarray:
    """k-space (coils, n, n) of smooth complex coil images inside the FOV."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[-n // 2 : n // 2, -n // 2 : n // 2] / (n / 2)
    images = []
    for _ in range(coils):
        cx, cy = rng.uniform(-0.3, 0.3, 2)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 0.08) * (x**2 + y**2 < 0.7)
        images.append(blob * np.exp(1j * rng.uniform(0, np.pi) * x))
    return centred_fft2(np.array(images)).astype(np.complex64)


def test_source_windows_stay_inside_the_readout():
    windows = source_windows(6, 3)
    assert windows.tolist() == [[0, 1, 2], [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [3, 4, 5]]
    with pytest.raises(InputDataError, match="fewer than num_sources"):
        source_windows(2, 3)


def test_nearest_grid_points_and_matrix_edges():
    coords = np.array([[0.4, -0.6], [-32.0, 31.4], [31.6, 0.0], [-32.6, 0.0]])
    grid, inside = nearest_grid_points(coords, (64, 64))
    assert grid.tolist() == [[0, -1], [-32, 31], [32, 0], [-33, 0]]
    assert inside.tolist() == [True, True, False, False]


def test_geometry_offsets_point_from_target_to_sources():
    traj = np.stack([np.linspace(-10, 10, 41), np.full(41, 0.3)], axis=-1)[None].astype(np.float32)
    geometry = build_geometry(traj, (32, 32), 3)
    assert geometry.num_samples == 41 and geometry.num_dropped == 0
    index = 20  # sample at (0, 0.3): target (0, 0)
    assert geometry.grid_index[index] == 16 * 32 + 16
    np.testing.assert_allclose(geometry.offsets[index], [[-0.5, 0.3], [0.0, 0.3], [0.5, 0.3]], atol=1e-6)
    assert geometry.source_index[index].tolist() == [19, 20, 21]


def test_nufft_matches_the_centred_fft_on_integer_positions():
    kspace = smooth_coil_kspace()
    image = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    ky, kx = np.mgrid[-5:5, -7:3]
    coords = np.stack([kx.ravel(), ky.ravel()], axis=-1).astype(float)
    values = nufft_forward(image, coords)
    np.testing.assert_allclose(values, kspace[:, ky.ravel() + 32, kx.ravel() + 32], atol=1e-5)
    # adjoint: <F x, y> = <x, F^H y>
    rng = np.random.default_rng(1)
    y = rng.standard_normal((3, coords.shape[0])) + 1j * rng.standard_normal((3, coords.shape[0]))
    lhs = np.vdot(values, y)
    rhs = np.vdot(image, nufft_adjoint(y, coords, (64, 64)))
    assert abs(lhs - rhs) < 1e-3 * abs(lhs)


def test_acs_block_from_lines_and_interpolation():
    kspace = smooth_coil_kspace()
    lines = []
    for ky in range(-8, 8):  # 16 lines, 2x oversampled readout from -16 to 16
        kx = np.arange(-32, 32) / 2
        data = np.zeros((3, 64), np.complex64)
        on_grid = kx == np.round(kx)
        data[:, on_grid] = kspace[:, ky + 32, (kx[on_grid] + 32).astype(int)]
        lines.append((data, np.stack([kx, np.full(64, ky)], axis=-1)))
    block = acs_from_cartesian_lines(lines, min_size=8)
    assert block.shape == (16, 32) and (block.kx0, block.ky0) == (-16, -8)
    np.testing.assert_allclose(block.kspace, kspace[:, 24:40, 16:48])
    values = OffGridInterpolator(block)(np.array([[0.0, 0.0], [3.0, -2.0]]))
    np.testing.assert_allclose(values, kspace[:, [32, 30], [32, 35]], rtol=1e-4, atol=1e-4)
    with pytest.raises(CalibrationError, match="only 16 x 32"):
        acs_from_cartesian_lines(lines, min_size=20)


def test_self_calibration_recovers_the_centre_and_rejects_sparse_data():
    kspace = smooth_coil_kspace()
    image = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    angles = np.arange(96) * np.deg2rad(111.246)
    radius = np.arange(-32, 32) / 2.0
    coords = np.stack([np.outer(np.cos(angles), radius), np.outer(np.sin(angles), radius)], -1).reshape(-1, 2)
    samples = nufft_forward(image, coords)
    block = self_calibrate(samples, coords, size=12, grid=32, iterations=30)
    assert block.source == "self-calibration"
    truth = kspace[:, 26:38, 26:38]
    assert np.linalg.norm(block.kspace - truth) < 0.05 * np.linalg.norm(truth)
    sparse = coords.reshape(96, 64, 2)[:8].reshape(-1, 2)
    assert centre_coverage(sparse, 9.5) < 0.9
    with pytest.raises(CalibrationError, match="not densely sampled"):
        self_calibrate(samples.reshape(3, 96, 64)[:, :8].reshape(3, -1), sparse, size=12, grid=32)


def test_identity_kernels_reduce_to_nearest_neighbour_averaging():
    rng = np.random.default_rng(3)
    traj = rng.uniform(-7, 7, (4, 10, 2)).astype(np.float32)
    samples = (rng.standard_normal((2, 40)) + 1j * rng.standard_normal((2, 40))).astype(np.complex64)
    geometry = build_geometry(traj, (16, 16), 3)
    # kernel picking source j of the same coil, where j is the sample itself in its window
    kernels = torch.zeros(geometry.num_samples, 2, 6, dtype=torch.complex64)
    position = (geometry.source_index == geometry.sample_index[:, None]).argmax(axis=1)
    for coil in range(2):
        kernels[torch.arange(geometry.num_samples), coil, coil * 3 + torch.from_numpy(position)] = 1
    kspace, hits, _ = (tensor.numpy() for tensor in grid_with_kernels(samples, geometry, KernelChunks.from_model_outputs(kernels.split(7)).with_noise_gains(), torch.device("cpu")))
    expected = np.zeros((2, 256), np.complex64)
    counts = np.bincount(geometry.grid_index, minlength=256)
    for coil in range(2):
        np.add.at(expected[coil], geometry.grid_index, samples[coil, geometry.sample_index])
    expected[:, counts > 0] /= counts[counts > 0]
    np.testing.assert_allclose(kspace.reshape(2, -1), expected, rtol=1e-5, atol=1e-6)
    assert hits.sum() == geometry.num_samples
    # noise gain ||K||_F^2 / coils: 1 for these kernels, 1/4 at half their size; 0 where nothing
    # landed; a sample without a kernel (not in rows) counts 1
    cpu = torch.device("cpu")
    halved = 0.5 * kernels
    _, _, gain = grid_with_kernels(samples, geometry, KernelChunks.from_model_outputs(halved.split(7)).keep().with_noise_gains(), cpu)
    np.testing.assert_allclose(gain.numpy()[hits > 0], 0.25, rtol=1e-6)
    assert (gain.numpy()[hits == 0] == 0).all()
    rows = np.arange(0, geometry.num_samples, 2)
    _, _, mixed = grid_with_kernels(
        samples, geometry, KernelChunks.from_model_outputs(halved[torch.from_numpy(rows)].split(7), rows).with_noise_gains(), cpu, rows
    )
    with_kernel = np.bincount(geometry.grid_index[rows], minlength=256).reshape(hits.shape)
    expected_gain = np.where(hits > 0, (0.25 * with_kernel + (hits - with_kernel)) / np.maximum(hits, 1), 0)
    np.testing.assert_allclose(mixed.numpy(), expected_gain, rtol=1e-6)


def test_gather_sources_is_coil_major():
    samples = torch.arange(12, dtype=torch.float32).reshape(2, 6).to(torch.complex64)
    out = gather_sources(samples, torch.tensor([[1, 2, 3]]))
    assert out.real.tolist() == [[1, 2, 3, 7, 8, 9]]
    grid, hits = average_on_grid(torch.ones(3, 1, dtype=torch.complex64), torch.tensor([0, 0, 3]), (2, 2))
    assert hits.tolist() == [[2, 0], [0, 1]] and grid[0].real.tolist() == [[1, 0], [0, 1]]


def test_neighbour_sources_are_the_nearest_samples_of_other_readouts():
    """Three parallel 3D readouts along kx: at y = 0.2, y = -0.5 and far away (y = 6). The samples
    of the first get the second's nearest samples (nearest to their target grid point first),
    never their own readout's, and themselves where no other readout lies within the radius."""
    x = np.arange(-3.0, 3.5, 0.5)
    traj = np.zeros((3, x.size, 3), dtype=np.float32)
    traj[:, :, 0] = x
    traj[0, :, 1], traj[1, :, 1], traj[2, :, 1] = 0.2, -0.5, 6.0
    base = build_geometry(traj, (16, 16, 16), 3)
    geometry = add_neighbour_sources(base, traj, 2, 1.0, chunk=5)  # several chunks
    assert geometry.source_index.shape == (base.num_samples, 5) and geometry.offsets.shape == (base.num_samples, 5, 3)
    assert np.array_equal(geometry.source_index[:, :3], base.source_index)
    samples = traj.shape[1]
    first = geometry.sample_index < samples  # the samples of readout 0
    extra = geometry.source_index[first, 3:]
    assert np.all(extra // samples == 1)
    own = geometry.sample_index[first]
    grid = np.floor(traj.reshape(-1, 3)[own] + 0.5)
    distance = np.linalg.norm(traj.reshape(-1, 3)[extra] - grid[:, None], axis=-1)
    assert np.all(distance <= 1.0) and np.all(distance[:, 0] <= distance[:, 1])
    np.testing.assert_allclose(geometry.offsets[first, 3:], traj.reshape(-1, 3)[extra] - grid[:, None], atol=1e-6)
    far = geometry.sample_index // samples == 2  # nothing within 1.0 of its grid points
    assert np.array_equal(geometry.source_index[far, 3:], np.repeat(geometry.sample_index[far, None], 2, axis=1))
    assert add_neighbour_sources(base, traj, 0, 1.0) is base
