"""Trajectory units and Cartesian readout positions (igrog_gadget.io.trajectory)."""

from __future__ import annotations

import numpy as np
import pytest

from igrog_gadget.errors import ConfigError, InputDataError
from igrog_gadget.io import cartesian_positions, resolve_trajectory_units
from igrog_gadget.scan import IDX_FIELDS, EncodingGeometry, Readout


@pytest.mark.parametrize(
    "max_abs, matrix, expected",
    [
        (0.5, 128, 128.0),  # normalized
        (0.0, 64, 64.0),
        (0.5005, 128, 128.0),  # within the 1e-3 tolerance
        (0.49, 256, 256.0),
        (0.52, 128, 1.0),  # just above normalized: grid units
        (64.0, 128, 1.0),
        (67.2, 128, 1.0),  # matrix/2 * 1.05
        (67.2009, 128, 1.0),  # plus the small absolute tolerance
    ],
)
def test_auto_units(max_abs, matrix, expected):
    assert resolve_trajectory_units(max_abs, matrix) == expected


@pytest.mark.parametrize("max_abs", [67.21, 100.0, 3.0e4])
def test_auto_units_out_of_range(max_abs):
    with pytest.raises(InputDataError, match=r"max \|k\| = .* with matrix 128.*normalized \(max \|k\| <= 0\.501\)"
                       r".*grid units.*67\.2.*set trajectory_units explicitly"):
        resolve_trajectory_units(max_abs, 128)


def test_auto_units_ambiguous_small_matrix():
    # matrix 1: the grid range (0.501, 0.526] barely exists; beyond it nothing is accepted
    assert resolve_trajectory_units(0.52, 1) == 1.0
    with pytest.raises(InputDataError, match=r"max \|k\| = 0\.6 with matrix 1.*set trajectory_units explicitly"):
        resolve_trajectory_units(0.6, 1)


def test_explicit_units_in_range():
    assert resolve_trajectory_units(0.3, 128, mode="grid") == 1.0
    assert resolve_trajectory_units(64.0, 128, mode="grid") == 1.0
    assert resolve_trajectory_units(0.5, 96, mode="normalized") == 96.0


def test_explicit_units_out_of_range_are_errors():
    with pytest.raises(InputDataError, match="trajectory_units = grid but max"):
        resolve_trajectory_units(500.0, 128, mode="grid")
    with pytest.raises(InputDataError, match="looks like grid units"):
        resolve_trajectory_units(40.0, 128, mode="normalized")


def test_bad_arguments():
    with pytest.raises(ConfigError, match="trajectory_units must be one of auto, grid, normalized; got 'cycles'"):
        resolve_trajectory_units(0.5, 128, mode="cycles")
    with pytest.raises(InputDataError, match="finite"):
        resolve_trajectory_units(float("nan"), 128)
    with pytest.raises(ValueError, match="matrix"):
        resolve_trajectory_units(0.5, 0)


def _readout(samples, center, ky, scan_counter=9):
    idx = {name: 0 for name in IDX_FIELDS}
    idx["kspace_encode_step_1"] = ky
    return Readout(
        data=np.zeros((2, samples), np.complex64),
        traj=None,
        flags=0,
        idx=idx,
        center_sample=center,
        scan_counter=scan_counter,
    )


def _enc(nx: int, ny: int, fov: float = 0.0, trajectory: str = "radial", center: int | None = None) -> EncodingGeometry:
    return EncodingGeometry((nx, ny, 1), (fov, fov, 5.0), trajectory, center)


def test_cartesian_positions_no_oversampling():
    positions = cartesian_positions(_readout(64, 32, ky=20), _enc(64, 48))
    assert positions.shape == (64, 2) and positions.dtype == np.float32
    np.testing.assert_array_equal(positions[:, 0], np.arange(64) - 32)
    assert np.all(positions[:, 1] == 20 - 24)
    assert positions[32, 0] == 0.0


def test_cartesian_positions_oversampling_2():
    positions = cartesian_positions(_readout(128, 64, ky=0), _enc(64, 64))
    np.testing.assert_allclose(positions[:, 0], (np.arange(128) - 64) / 2)
    assert positions[0, 0] == -32.0 and positions[-1, 0] == 31.5
    assert np.all(positions[:, 1] == -32)


def test_cartesian_positions_partial_echo_and_tolerance():
    # fewer samples than nx (asymmetric echo): no oversampling
    positions = cartesian_positions(_readout(40, 8, ky=31), _enc(64, 64))
    np.testing.assert_array_equal(positions[:, 0], np.arange(40) - 8)
    assert np.all(positions[:, 1] == -1)
    # 130 / 64 = 2.03: within 2 % of 2
    positions = cartesian_positions(_readout(130, 65, ky=1), _enc(64, 64))
    assert positions[65, 0] == 0.0 and positions[67, 0] == 1.0


def test_cartesian_positions_errors():
    with pytest.raises(InputDataError, match=r"acquisition 9: field 'number_of_samples' = 96.*nx = 64 \(ratio 1\.5\)"):
        cartesian_positions(_readout(96, 48, ky=0), _enc(64, 64))
    with pytest.raises(InputDataError, match=r"acquisition 9: field 'idx\.kspace_encode_step_1' = 64.*0\.\.63"):
        cartesian_positions(_readout(64, 32, ky=64), _enc(64, 64))


def test_normalized_bulk_with_a_small_overshoot_is_normalized():
    """Real gradient waveforms reach 0.52 in a normalized trajectory: not grid units."""
    assert resolve_trajectory_units(0.52, 128, bulk_abs=0.499) == 128.0
    assert resolve_trajectory_units(0.52, 128, bulk_abs=0.51) == 1.0  # the bulk itself is beyond 0.5
    assert resolve_trajectory_units(40.0, 128, bulk_abs=39.0) == 1.0


def test_normalized_bulk_with_a_large_overshoot_is_inconsistent():
    with pytest.raises(InputDataError, match=r"inconsistent trajectory units: 99% of \|k\| are <= 0\.49.*max \|k\| = 3"):
        resolve_trajectory_units(3.0, 128, bulk_abs=0.49)


def test_cartesian_positions_of_a_separate_calibration_encoding():
    """A 32 x 32 calibration encoding (own e1 numbering, centre 16, 2x readout oversampling) with
    the imaging FOV, placed on a 128 grid; the same scan with encodedSpace x = 64 over twice the FOV."""
    calibration = _enc(32, 32, fov=256.0, trajectory="cartesian", center=16)
    imaging = _enc(128, 128, fov=256.0)
    positions = cartesian_positions(_readout(64, 32, ky=20), calibration, imaging)
    np.testing.assert_allclose(positions[:, 0], (np.arange(64) - 32) / 2)
    assert np.all(positions[:, 1] == 4)
    oversampled = EncodingGeometry((64, 32, 1), (512.0, 256.0, 5.0), "cartesian", 16)
    np.testing.assert_allclose(cartesian_positions(_readout(64, 32, ky=20), oversampled, imaging), positions)
    # the centre is only read from a Cartesian encoding (a radial one's e1 counts spokes)
    assert np.all(cartesian_positions(_readout(64, 32, ky=20), _enc(64, 48, center=3))[:, 1] == 20 - 24)
    # a partial-Fourier Cartesian encoding: lines 0..39 of 64, centre 32
    assert np.all(cartesian_positions(_readout(64, 32, ky=20), _enc(64, 64, trajectory="cartesian", center=32))[:, 1] == -12)
