"""Phantom, coil sensitivities and trajectories of the simulator."""

from __future__ import annotations

import numpy as np
import pytest

from igrog_gadget.simulate import (
    GOLDEN_ANGLE_DEG,
    cartesian_lines,
    coil_sensitivities,
    object_support,
    phantom,
    radial_golden_angle,
    spiral,
)
from igrog_gadget.simulate.phantoms import grid_coordinates


def test_phantom_shape_support_and_variation() -> None:
    x = phantom(128)
    assert x.shape == (128, 128) and np.iscomplexobj(x)
    xs, ys = grid_coordinates(128)
    radius = np.maximum(np.abs(xs), np.abs(ys))
    assert np.abs(x[radius > 0.9]).max() < 1e-3  # support inside 90% of the FOV
    assert np.abs(x).max() < 1.2
    assert np.ptp(np.angle(x[np.abs(x) > 0.1])) > 0.5  # smooth, non-trivial phase
    # slices and contrasts differ
    assert np.linalg.norm(phantom(128, 1) - x) > 0.05 * np.linalg.norm(x)
    assert np.linalg.norm(phantom(128, 0, 1) - x) > 0.05 * np.linalg.norm(x)
    assert np.isrealobj(phantom(32, complex_valued=False).imag) and not np.any(
        phantom(32, complex_valued=False).imag
    )
    with pytest.raises(ValueError, match="slice_index"):
        phantom(32, -1)


def test_object_support_mask() -> None:
    mask = object_support(64)
    assert mask.dtype == bool and 0.3 < mask.mean() < 0.7
    assert mask[32, 32] and not mask[0, 0]


def test_coil_sensitivities_normalised_and_smooth() -> None:
    maps = coil_sensitivities(8, 64)
    assert maps.shape == (8, 64, 64)
    np.testing.assert_allclose(np.sum(np.abs(maps) ** 2, axis=0), 1.0, atol=1e-12)
    # smooth: neighbouring pixels differ little
    assert np.abs(np.diff(maps, axis=-1)).max() < 0.1
    # coils are distinct
    assert np.abs(np.vdot(maps[0], maps[4])) < 0.5 * np.vdot(maps[0], maps[0]).real
    # fine and coarse grids sample the same function
    np.testing.assert_allclose(coil_sensitivities(8, 128)[:, ::2, ::2], maps, atol=1e-12)
    with pytest.raises(ValueError, match="num_coils"):
        coil_sensitivities(0, 16)


def test_radial_golden_angle() -> None:
    traj = radial_golden_angle(10, 256, 128)
    assert traj.shape == (10, 256, 2)
    np.testing.assert_allclose(traj[:, 128], 0.0, atol=1e-12)
    step = np.linalg.norm(np.diff(traj, axis=1), axis=-1)
    np.testing.assert_allclose(step, 0.5)
    np.testing.assert_allclose(np.linalg.norm(traj[:, 0], axis=-1), 64.0)
    np.testing.assert_allclose(traj[0, 0], [-64.0, 0.0], atol=1e-12)
    angle = np.rad2deg(np.arctan2(traj[1, -1, 1], traj[1, -1, 0]))
    assert angle == pytest.approx(111.246, abs=1e-3) and GOLDEN_ANGLE_DEG == pytest.approx(111.2461, abs=1e-4)
    assert radial_golden_angle(3, 64, 64, readout_oversampling=1).shape == (3, 64, 2)
    with pytest.raises(ValueError, match="samples_per_spoke"):
        radial_golden_angle(3, 1024, 128)


def test_cartesian_lines() -> None:
    lines = cartesian_lines(np.array([-2, 0, 1]), 16)
    assert lines.shape == (3, 32, 2)
    np.testing.assert_allclose(lines[:, 16, 0], 0.0)
    np.testing.assert_allclose(lines[0, :, 0], (np.arange(32) - 16) / 2)
    np.testing.assert_allclose(lines[:, 0, 1], [-2, 0, 1])


@pytest.mark.parametrize("interleaves,N,ms", [(16, 128, 8.0), (8, 64, 10.0), (4, 64, 5.0)])
def test_spiral_spacing_and_extent(interleaves: int, N: int, ms: float) -> None:
    traj, dwell = spiral(interleaves, N, ms)
    n = traj.shape[1]
    assert traj.shape == (interleaves, n, 2)
    assert abs(n * dwell - ms * 1000) <= dwell
    step = np.linalg.norm(np.diff(traj, axis=1), axis=-1)
    assert step.max() <= 0.5
    radius = np.linalg.norm(traj, axis=-1)
    np.testing.assert_allclose(traj[:, 0], 0.0, atol=1e-12)
    assert radius.max() == pytest.approx(N / 2, abs=1e-6)
    assert np.abs(traj).max() < N / 2  # no sample on a +N/2 grid edge
    # interleaves are rotated copies
    rot = 2 * np.pi / interleaves
    c, s = np.cos(rot), np.sin(rot)
    np.testing.assert_allclose(traj[1, :, 0], c * traj[0, :, 0] - s * traj[0, :, 1], atol=1e-9)
    # densest near the centre
    assert step[:, : n // 20].mean() < step[:, -n // 20 :].mean()


def test_spiral_centre_is_nyquist_dense_16_interleaves_128() -> None:
    traj, _ = spiral(16, 128, 8.0)
    pts = traj.reshape(-1, 2)
    # every grid point with |k| <= 16 has a sample within 0.75 grid units
    g = np.arange(-16, 17)
    gx, gy = np.meshgrid(g, g)
    grid = np.stack([gx.ravel(), gy.ravel()], -1)
    grid = grid[np.linalg.norm(grid, axis=-1) <= 16]
    near = pts[np.linalg.norm(pts, axis=-1) < 18]
    dist = np.sqrt(((grid[:, None, :] - near[None, :, :]) ** 2).sum(-1)).min(axis=1)
    assert dist.max() < 0.75


def test_spiral_rejects_too_coarse_dwell() -> None:
    with pytest.raises(ValueError, match="sample_time_us"):
        spiral(16, 128, 8.0, sample_time_us=10.0)
    traj, dwell = spiral(16, 128, 8.0, sample_time_us=2.0)
    assert dwell == 2.0 and traj.shape[1] == 4000


def test_3d_phantom_coils_and_support_on_an_anisotropic_grid() -> None:
    shape = (12, 16, 20)  # (nz, ny, nx)
    x, y, z = grid_coordinates(shape)
    assert x.shape == shape and np.all(np.diff(x, axis=2) > 0) and np.all(np.diff(z, axis=0) > 0)
    volume = phantom(shape)
    assert volume.shape == shape and np.iscomplexobj(volume) and np.abs(volume).max() < 1.2
    assert np.abs(volume[np.maximum(np.maximum(np.abs(x), np.abs(y)), np.abs(z)) > 0.95]).max() < 0.05  # blurred edge on a coarse grid
    mask = object_support(shape)
    assert mask.shape == shape and mask[6, 8, 10] and not mask[0, 0, 0]
    for coils in (4, 8):  # one ring, then two rings at z = -0.5, +0.5
        maps = coil_sensitivities(coils, shape)
        assert maps.shape == (coils, *shape)
        np.testing.assert_allclose(np.sum(np.abs(maps) ** 2, axis=0), 1.0, atol=1e-12)
        np.testing.assert_array_equal(coil_sensitivities(coils, shape, coils - 1), maps[-1])
    ring = np.abs(coil_sensitivities(8, shape))
    assert ring[0, :6].sum() > ring[0, 6:].sum() and ring[1, 6:].sum() > ring[1, :6].sum()  # coil 0 low z, coil 1 high z
    with pytest.raises(ValueError, match="grid sizes must be >= 2"):
        grid_coordinates((1, 8, 8))
