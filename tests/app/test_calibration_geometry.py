"""Calibration lines placed from the header, bad lines never used, readouts of different lengths,
undersampled radial without ACS: files edited the way other writers make them, each scored
against nearest-neighbour gridding of the same file."""

from __future__ import annotations

import logging
from pathlib import Path

import ismrmrd
import numpy as np
import pytest

from benchmarks.baselines import grid_nearest_neighbour
from benchmarks.evaluation import load_case, nrmse_on_sampled
from benchmarks.writer_edits import (
    add_calibration_encoding,
    as_calibration_scan,
    calibration_lines_with_zero_trajectory,
    copy_dataset,
    keep_header,
    noise_scans_scaled,
    shorten_even_spokes,
    without_calibration_lines,
    without_noise_scans,
)
from igrog_gadget.config import load_config
from igrog_gadget.core.calibrate import ACS_CHECK_COILS
from igrog_gadget.errors import InputDataError
from igrog_gadget.replay import replay_file
from igrog_gadget.simulate import SimulationSpec, simulate_to_file

QUICK = ["training.max_steps=120", "calibration.num_training_pairs=8000", "training.plateau_patience=0"]

#: The calibration of these files' frames: 64 spokes, no more than ``training.early_readouts``, so
#: each model trains from the whole frame and calibrates jointly (ACS lines + samples).
EARLY_CALIBRATION = "joint"


@pytest.fixture(scope="module")
def radial64(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("calgeom") / "radial64.h5"
    simulate_to_file(path, SimulationSpec(matrix=64, coils=4, spokes=64, acs=32, seed=11))
    return path


@pytest.fixture(scope="module")
def reference(radial64, tmp_path_factory):
    """The unedited file replayed once with QUICK (calibrated jointly with its ACS lines)."""
    return replay_file(radial64, tmp_path_factory.mktemp("calgeom_ref") / "ref.h5", load_config("basic", overrides=QUICK))


@pytest.fixture(scope="module")
def without_lines_reference(radial64, tmp_path_factory):
    """The file without its calibration lines replayed once with QUICK (self-calibration)."""
    directory = tmp_path_factory.mktemp("calgeom_none")
    without = copy_dataset(radial64, directory / "none.h5", keep_header, without_calibration_lines)
    return replay_file(without, directory / "ref.h5", load_config("basic", overrides=QUICK))


def nn_error(truth_file: Path) -> float:
    case = load_case("c", truth_file, load_config("basic"))
    nn = grid_nearest_neighbour(case.frame.flat_samples(), case.frame.flat_coords(), case.frame.matrix)
    return nrmse_on_sampled(nn.kspace, nn.hits, case.truth)


def error_of(report, truth_file: Path) -> float:
    case = load_case("c", truth_file, load_config("basic"))
    nn = grid_nearest_neighbour(case.frame.flat_samples(), case.frame.flat_coords(), case.frame.matrix)
    return nrmse_on_sampled(report.frames[0].kspace, nn.hits, case.truth)


def test_separate_calibration_encoding_with_its_own_numbering_is_used(radial64, reference, tmp_path):
    edited = copy_dataset(radial64, tmp_path / "sep.h5", add_calibration_encoding, as_calibration_scan(1, True))
    config = load_config("basic", overrides=QUICK)
    report = replay_file(edited, tmp_path / "out.h5", config)
    assert report.frames[0].report.training.calibration == reference.frames[0].report.training.calibration == EARLY_CALIBRATION
    error = error_of(report, radial64)
    assert error < 1.1 * error_of(reference, radial64)
    assert error < 0.5 * nn_error(radial64)


def test_a_calibration_encoding_alone_calibrates_as_well_as_the_samples(tmp_path, caplog):
    """32 spokes for a 128 matrix, 8 coils: the centre around the separate 32 x 32 calibration
    encoding is too sparse for the joint solve, so its block calibrates alone. The block has no
    noise estimate of its own: it takes the noise scans' level (recorded: 0.027, better than the
    samples alone, 0.030); a file without noise scans leaves the closed form's ridge at its floor
    (``MIN_RELATIVE_LOADING``: 0.032; 0.079 with the floor at 1e-6, where the block's
    single-precision solves were ill-conditioned), and so do noise scans far too strong for it."""
    source = tmp_path / "radial32.h5"
    simulate_to_file(source, SimulationSpec(matrix=128, coils=8, spokes=32, acs=32, seed=3))
    edited = copy_dataset(source, tmp_path / "separate.h5", add_calibration_encoding, as_calibration_scan(1, True))
    quiet = copy_dataset(edited, tmp_path / "separate_no_noise.h5", keep_header, without_noise_scans)
    without = copy_dataset(source, tmp_path / "none.h5", keep_header, without_calibration_lines)
    with caplog.at_level(logging.INFO, logger="igrog_gadget.core.calibrate"):
        alone = replay_file(edited, tmp_path / "separate_out.h5", load_config("basic"))
    assert "the acs block has no noise estimate of its own: the noise scans' level" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="igrog_gadget.core.calibrate"):
        alone_without_noise = replay_file(quiet, tmp_path / "separate_no_noise_out.h5", load_config("basic"))
    assert "noise scans' level" not in caplog.text
    samples = replay_file(without, tmp_path / "none_out.h5", load_config("basic"))
    # noise scans 100 times too strong (noise power 30x the block's mean) are refused: the floor's result
    loud = copy_dataset(edited, tmp_path / "separate_loud_noise.h5", keep_header, noise_scans_scaled(100.0))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="igrog_gadget.core.calibrate"):
        alone_loud_noise = replay_file(loud, tmp_path / "separate_loud_noise_out.h5", load_config("basic"))
    assert "the noise scans' level" in caplog.text and "is not used for the acs block" in caplog.text
    np.testing.assert_array_equal(alone_loud_noise.frames[0].kspace, alone_without_noise.frames[0].kspace)
    assert alone.frames[0].report.training.calibration == alone_without_noise.frames[0].report.training.calibration == "acs"
    assert samples.frames[0].report.training.calibration == "self-calibration"
    errors = error_of(alone, source), error_of(alone_without_noise, source), error_of(samples, source)
    assert errors[0] < errors[2] and errors[1] < 1.3 * errors[2], errors


@pytest.mark.parametrize(
    "ref, own_numbering, reason",
    [(1, False, "cannot be placed"), (0, False, "disagree with the non-Cartesian samples")],
    ids=["main-numbering-in-encoding-1", "cut-lines-read-as-encoding-0"],
)
def test_misplaced_calibration_lines_are_not_used(
    radial64, without_lines_reference, tmp_path, caplog, ref, own_numbering, reason
):
    """Lines the header places wrongly (e1 past the calibration encoding; 64-sample lines read on
    the 64 matrix as unoversampled) are left out with a warning: the result equals calibrating
    without them, never worse."""
    edited = copy_dataset(radial64, tmp_path / "bad.h5", add_calibration_encoding, as_calibration_scan(ref, own_numbering))
    config = load_config("basic", overrides=QUICK)
    with caplog.at_level(logging.WARNING):
        report = replay_file(edited, tmp_path / "out.h5", config)
    assert reason in caplog.text
    assert report.frames[0].report.training.calibration == "self-calibration"
    np.testing.assert_array_equal(report.frames[0].kspace, without_lines_reference.frames[0].kspace)
    assert error_of(report, radial64) < 0.5 * nn_error(radial64)


def test_misplaced_lines_are_found_in_the_strongest_coils_of_many(tmp_path, caplog):
    """With 12 coils the check fits the samples alone in the 4 strongest (ACS_CHECK_COILS): lines
    cut and read as encoding 0 are still refused, and agreeing lines still used."""
    path = tmp_path / "radial64x12.h5"
    simulate_to_file(path, SimulationSpec(matrix=64, coils=12, spokes=64, acs=32, seed=12))
    assert ACS_CHECK_COILS < 12
    config = load_config("basic", overrides=QUICK)
    good = replay_file(path, tmp_path / "good.h5", config)
    assert good.frames[0].report.training.calibration == EARLY_CALIBRATION
    edited = copy_dataset(path, tmp_path / "bad.h5", add_calibration_encoding, as_calibration_scan(0, False))
    with caplog.at_level(logging.WARNING):
        bad = replay_file(edited, tmp_path / "bad_out.h5", config)
    assert "disagree with the non-Cartesian samples" in caplog.text
    assert bad.frames[0].report.training.calibration == "self-calibration"


def test_calibration_lines_with_an_all_zero_trajectory_are_placed_by_their_counters(radial64, reference, tmp_path):
    """mrpro's test-data writer leaves its separate calibration lines' traj at zero: they are
    Cartesian lines, placed by e1 and the centre sample, exactly as without a traj."""
    edited = copy_dataset(radial64, tmp_path / "zero.h5", keep_header, calibration_lines_with_zero_trajectory)
    config = load_config("basic", overrides=QUICK)
    report = replay_file(edited, tmp_path / "out.h5", config)
    assert report.frames[0].report.training.calibration == EARLY_CALIBRATION
    np.testing.assert_array_equal(report.frames[0].kspace, reference.frames[0].kspace)


def test_imaging_data_of_another_encoding_is_refused(radial64, tmp_path):
    def to_encoding_1(acq: ismrmrd.Acquisition, _: int) -> ismrmrd.Acquisition:
        if acq.traj.size:
            head = acq.getHead()
            head.encoding_space_ref = 1
            acq.setHead(head)
        return acq

    edited = copy_dataset(radial64, tmp_path / "enc1.h5", add_calibration_encoding, to_encoding_1)
    with pytest.raises(InputDataError, match=r"imaging data of encoding 1 .*grids the first encoding"):
        replay_file(edited, tmp_path / "out.h5", load_config("basic", overrides=QUICK))
    assert not (tmp_path / "out.h5").exists()


def test_readouts_of_different_lengths_in_one_frame(radial64, tmp_path):
    """Every other spoke loses its first 24 samples (an asymmetric echo on half the spokes)."""

    edited = copy_dataset(radial64, tmp_path / "mixed.h5", keep_header, shorten_even_spokes(24))
    report = replay_file(edited, tmp_path / "out.h5", load_config("basic", overrides=QUICK))
    assert len(report.frames) == 1
    real = 64 * 128 - 32 * 24  # samples of the file; a few at the grid's edge fall outside
    assert real - 2 * 64 <= int(report.frames[0].hits.sum()) <= real
    assert error_of(report, radial64) < 0.5 * nn_error(radial64)


def test_undersampled_radial_without_acs_calibrates_at_low_resolution(tmp_path, caplog):
    """48 spokes for a 128 matrix, no ACS: the centre is dense only within radius ~21 (< the 23.6
    a 32 block needs): a low-resolution block, the estimated error reported, far better than NN."""
    path = tmp_path / "radial48.h5"
    simulate_to_file(path, SimulationSpec(matrix=128, coils=8, spokes=48, acs=None, seed=5))
    with caplog.at_level(logging.WARNING):
        report = replay_file(path, tmp_path / "out.h5", load_config("basic", overrides=QUICK))
    assert "low-resolution self-calibration block" in caplog.text
    estimate = report.frames[0].report.estimated_nrmse
    error = error_of(report, path)
    assert error < 0.4 * nn_error(path)
    assert 0 < estimate < 3 * error


def radial_coords(spokes: int, matrix: int) -> np.ndarray:
    """Sample positions (spokes * 2 * matrix, 2) of a full radial trajectory, grid units."""
    angles = np.arange(spokes) * np.pi / spokes
    radii = np.arange(-matrix, matrix) / 2
    return np.stack([np.outer(np.cos(angles), radii).ravel(), np.outer(np.sin(angles), radii).ravel()], axis=1)


def test_a_2d_block_grows_with_the_matrix_as_far_as_the_centre_is_dense():
    """``plane_block_side``: from selfcal_size up to ``max_block_fraction`` of the matrix side, at
    most ``max_block_side``, where the samples fill the centre: a 256 radial at Nyquist (402
    spokes) grows its block to 48, at 64 spokes less far, at 24 spokes not at all; a 128 matrix at
    Nyquist to 48 too, a 96 matrix to 36 (the fraction), and 0 turns the growth off. The limit on
    the calibration solve covers the largest side."""
    from igrog_gadget.core.calibrate import plane_block_side
    from igrog_gadget.errors import ConfigError
    from igrog_gadget.limits import ResourceLimits

    config = load_config("basic").calibration
    assert plane_block_side(radial_coords(402, 256), (256, 256), 32, config) == 48
    assert plane_block_side(radial_coords(402, 256), (256, 320), 32, config) == 48  # the smaller side
    assert 32 < plane_block_side(radial_coords(64, 256), (256, 256), 32, config) < 48  # as far as it is dense
    assert plane_block_side(radial_coords(24, 256), (256, 256), 32, config) == 32  # not dense at 32 either
    assert plane_block_side(radial_coords(201, 128), (128, 128), 32, config) == 48
    assert plane_block_side(radial_coords(151, 96), (96, 96), 32, config) == 36  # 0.375 x 96
    larger = load_config("basic", overrides=["calibration.max_block_fraction=0.5", "calibration.max_block_side=128"]).calibration
    assert plane_block_side(radial_coords(804, 512), (512, 512), 32, larger) == 128
    off = load_config("basic", overrides=["calibration.max_block_fraction=0"]).calibration
    assert plane_block_side(radial_coords(402, 256), (256, 256), 32, off) == 32
    with pytest.raises(ConfigError, match=r"max_block_fraction = 0\.375 lets a 2D calibration block grow to max_block_side = 48 .*max_selfcal_grid = 64"):
        ResourceLimits(max_selfcal_grid=64).check_config(load_config("basic"))
    ResourceLimits(max_selfcal_grid=64).check_config(load_config("basic", overrides=["calibration.max_block_fraction=0"]))
    ResourceLimits(max_selfcal_grid=64).check_config(load_config("basic", overrides=["calibration.max_block_side=32"]))
