"""Calibration lines placed from the header, bad lines never used, readouts of different lengths,
undersampled radial without ACS: files edited the way other writers make them, each scored
against nearest-neighbour gridding of the same file."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import ismrmrd
import numpy as np
import pytest

from benchmarks.baselines import grid_nearest_neighbour
from benchmarks.evaluation import load_case, nrmse_on_sampled
from igrog_gadget.config import load_config
from igrog_gadget.errors import InputDataError
from igrog_gadget.replay import replay_file
from igrog_gadget.simulate import SimulationSpec, simulate_to_file

QUICK = ["training.max_steps=300", "calibration.num_training_pairs=20000", "training.plateau_patience=0"]
CAL = 32
"""Side of the separate calibration encoding."""


@pytest.fixture(scope="module")
def radial64(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("calgeom") / "radial64.h5"
    simulate_to_file(path, SimulationSpec(matrix=64, coils=4, spokes=64, acs=32, seed=11))
    return path


def nn_error(truth_file: Path) -> float:
    case = load_case("c", truth_file, load_config("basic"))
    nn = grid_nearest_neighbour(case.frame.flat_samples(), case.frame.flat_coords(), case.frame.matrix)
    return nrmse_on_sampled(nn.kspace, nn.hits, case.truth)


def error_of(report, truth_file: Path) -> float:
    case = load_case("c", truth_file, load_config("basic"))
    nn = grid_nearest_neighbour(case.frame.flat_samples(), case.frame.flat_coords(), case.frame.matrix)
    return nrmse_on_sampled(report.frames[0].kspace, nn.hits, case.truth)


def copy_dataset(source: Path, target: Path, change_header, change_acquisition) -> Path:
    """``target`` = ``source`` with ``change_header(header object)`` and every acquisition through
    ``change_acquisition(acq, N) -> acq | None``."""
    src = ismrmrd.Dataset(str(source), "dataset", create_if_needed=False)
    header = ismrmrd.xsd.CreateFromDocument(src.read_xml_header())
    matrix = int(header.encoding[0].encodedSpace.matrixSize.x)
    change_header(header)
    dst = ismrmrd.Dataset(str(target), "dataset", create_if_needed=True)
    dst.write_xml_header(ismrmrd.xsd.ToXML(header))
    for index in range(src.number_of_acquisitions()):
        acq = change_acquisition(src.read_acquisition(index), matrix)
        if acq is not None:
            dst.append_acquisition(acq)
    src.close()
    dst.close()
    return target


def add_calibration_encoding(header) -> None:
    """A second <encoding>: Cartesian 32 x 32 with the imaging FOV, lines 0..31 centred on 16,
    readouts of 64 samples (2x oversampling), as a separate low-resolution calibration scan."""
    enc = copy.deepcopy(header.encoding[0])
    enc.trajectory = ismrmrd.xsd.trajectoryType.CARTESIAN
    enc.trajectoryDescription = None
    for space in (enc.encodedSpace, enc.reconSpace):
        space.matrixSize.x = space.matrixSize.y = CAL
    enc.encodingLimits.kspace_encoding_step_0 = ismrmrd.xsd.limitType(minimum=0, maximum=2 * CAL - 1, center=CAL)
    enc.encodingLimits.kspace_encoding_step_1 = ismrmrd.xsd.limitType(minimum=0, maximum=CAL - 1, center=CAL // 2)
    header.encoding.append(enc)


def as_calibration_scan(ref: int, own_numbering: bool):
    """ACS lines cut to the calibration encoding's 64-sample readout, ``encoding_space_ref = ref``,
    e1 renumbered 0..31 (``own_numbering``) or left on the 64-line main grid."""

    def change(acq: ismrmrd.Acquisition, matrix: int) -> ismrmrd.Acquisition:
        if not acq.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION):
            return acq
        head = acq.getHead()
        head.encoding_space_ref = ref
        if own_numbering:
            head.idx.kspace_encode_step_1 = acq.idx.kspace_encode_step_1 - matrix // 2 + CAL // 2
        centre = acq.center_sample
        head.number_of_samples = 2 * CAL
        head.center_sample = CAL
        cut = ismrmrd.Acquisition(head)
        cut.data[:] = acq.data[:, centre - CAL : centre + CAL]
        return cut

    return change


def test_separate_calibration_encoding_with_its_own_numbering_is_used(radial64, tmp_path):
    edited = copy_dataset(radial64, tmp_path / "sep.h5", add_calibration_encoding, as_calibration_scan(1, True))
    config = load_config("basic", overrides=QUICK)
    report = replay_file(edited, tmp_path / "out.h5", config)
    reference = replay_file(radial64, tmp_path / "ref.h5", config)
    assert report.frames[0].info["calibration"] == "joint"
    error = error_of(report, radial64)
    assert error < 1.1 * error_of(reference, radial64)
    assert error < 0.5 * nn_error(radial64)


@pytest.mark.parametrize(
    "ref, own_numbering, reason",
    [(1, False, "cannot be placed"), (0, False, "disagree with the non-Cartesian samples")],
    ids=["main-numbering-in-encoding-1", "cut-lines-read-as-encoding-0"],
)
def test_misplaced_calibration_lines_are_not_used(radial64, tmp_path, caplog, ref, own_numbering, reason):
    """Lines the header places wrongly (e1 past the calibration encoding; 64-sample lines read on
    the 64 matrix as unoversampled) are left out with a warning: the result equals calibrating
    without them, never worse."""
    edited = copy_dataset(radial64, tmp_path / "bad.h5", add_calibration_encoding, as_calibration_scan(ref, own_numbering))
    without = copy_dataset(
        radial64, tmp_path / "none.h5", lambda h: None,
        lambda acq, _: None if acq.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION) else acq,
    )
    config = load_config("basic", overrides=QUICK)
    with caplog.at_level(logging.WARNING):
        report = replay_file(edited, tmp_path / "out.h5", config)
    assert reason in caplog.text
    reference = replay_file(without, tmp_path / "ref.h5", config)
    assert report.frames[0].info["calibration"] == "self-calibration"
    np.testing.assert_array_equal(report.frames[0].kspace, reference.frames[0].kspace)
    assert error_of(report, radial64) < 0.5 * nn_error(radial64)


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

    def shorten(acq: ismrmrd.Acquisition, _: int) -> ismrmrd.Acquisition:
        if not acq.traj.size or acq.idx.kspace_encode_step_1 % 2:
            return acq
        head = acq.getHead()
        head.number_of_samples = acq.number_of_samples - 24
        head.center_sample = acq.center_sample - 24
        short = ismrmrd.Acquisition(head)
        short.data[:] = acq.data[:, 24:]
        short.traj[:] = acq.traj[24:]
        return short

    edited = copy_dataset(radial64, tmp_path / "mixed.h5", lambda h: None, shorten)
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
    info = report.frames[0].info
    error = error_of(report, path)
    assert error < 0.4 * nn_error(path)
    assert 0 < info["estimated_nrmse"] < 3 * error
