"""Accuracy of the basic variant on recorded files against their Cartesian ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from app_helpers import ACCURATE, FAST, nrmse_on_sampled

from benchmarks.baselines import ClassicGrog, grid_nearest_neighbour
from benchmarks.evaluation import grog_block, load_case
from igrog_gadget.planning.gridder import FrameGridder
from igrog_gadget.config import load_config
from igrog_gadget.simulate import SimulationSpec, simulate_to_file


@pytest.mark.parametrize(
    "name, calibration",
    [("radial_acs", "joint"), ("radial_selfcal", "self-calibration"), ("spiral_acs", "joint")],
)
def test_igrog_beats_nearest_neighbour_and_classic_grog(data_file, name, calibration):
    config = load_config("basic", overrides=ACCURATE)
    case = load_case(name, data_file(name), config)
    frame = case.frame
    result = FrameGridder(config).grid(frame)
    assert result.report.training.calibration == calibration

    igrog = nrmse_on_sampled(result.kspace, result.hits, case.truth)
    nn = grid_nearest_neighbour(frame.flat_samples(), frame.flat_coords(), frame.matrix)
    grog = ClassicGrog.from_acs(grog_block(case, config).kspace).grid(frame.flat_samples(), frame.flat_coords(), frame.matrix)
    nn_error = nrmse_on_sampled(nn.kspace, nn.hits, case.truth)
    grog_error = nrmse_on_sampled(grog.kspace, grog.hits, case.truth)
    assert igrog < 0.4 * nn_error, (igrog, nn_error)
    assert igrog < 0.8 * grog_error, (igrog, grog_error)


def test_grid_and_normalized_units_give_the_same_result(tmp_path):
    common = dict(matrix=32, coils=4, spokes=48, samples_per_spoke=64, acs=16, snr=50.0, seed=11)
    grid_file, normalized_file = tmp_path / "grid.h5", tmp_path / "normalized.h5"
    simulate_to_file(grid_file, SimulationSpec(trajectory_units="grid", **common))
    simulate_to_file(normalized_file, SimulationSpec(trajectory_units="normalized", **common))
    overrides = FAST + ["calibration.acs_min_size=8", "calibration.edge_margin=2"]
    results = []
    for path, units in ((grid_file, "auto"), (normalized_file, "auto"), (normalized_file, "normalized")):
        config = load_config("basic", overrides=overrides + [f"gridding.trajectory_units={units}"])
        case = load_case("units", path, config)
        assert np.abs(case.frame.traj).max() > 10, "positions are in grid units once resolved"
        results.append(FrameGridder(config).grid(case.frame).kspace)
    np.testing.assert_allclose(results[1], results[0], rtol=1e-3, atol=1e-4 * np.abs(results[0]).max())
    np.testing.assert_array_equal(results[2], results[1])


def test_acs_only_calibration_also_beats_grog(data_file):
    config = load_config("basic", overrides=ACCURATE + ["calibration.source=acs"])
    case = load_case("radial_acs", data_file("radial_acs"), config)
    result = FrameGridder(config).grid(case.frame)
    assert result.report.training.calibration == "acs"
    block = grog_block(case, config)
    assert block.shape == (24, 64), "24 ACS lines of the full readout"
    frame = case.frame
    grog = ClassicGrog.from_acs(block.kspace).grid(frame.flat_samples(), frame.flat_coords(), frame.matrix)
    assert nrmse_on_sampled(result.kspace, result.hits, case.truth) < 0.8 * nrmse_on_sampled(grog.kspace, grog.hits, case.truth)


def test_wrong_explicit_units_are_an_error(data_file):
    from igrog_gadget.errors import InputDataError

    config = load_config("basic", overrides=FAST + ["gridding.trajectory_units=normalized"])
    with pytest.raises(InputDataError, match="looks like grid units"):
        load_case("radial", data_file("radial_acs"), config)


def test_kernels_are_reused_for_a_new_frame_of_the_same_trajectory(data_file):
    config = load_config("basic", overrides=FAST)
    case = load_case("radial", data_file("radial_acs"), config)
    gridder = FrameGridder(config)
    first = gridder.grid(case.frame)
    doubled = case.frame  # a new frame: the same trajectory, twice the data (calibration lines too)
    doubled.samples = 2 * doubled.samples
    doubled.calibration_lines = [(2 * data, positions) for data, positions in doubled.calibration_lines]
    second = gridder.grid(doubled)
    assert second.report.path == "cached kernels" and gridder.trainings == 1
    np.testing.assert_allclose(second.kspace, 2 * first.kspace, rtol=1e-4, atol=1e-6)
