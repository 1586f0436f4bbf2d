"""Frame boundaries from the counters and the header's e1 limits, with flags only as a hint."""

from __future__ import annotations

from pathlib import Path

import ismrmrd
import numpy as np
import pytest

from benchmarks.baselines import grid_nearest_neighbour
from benchmarks.evaluation import load_case, nrmse_on_sampled
from igrog_gadget.config import load_config
from igrog_gadget.io.acquisitions import copy_acquisitions
from igrog_gadget.replay import replay_file
from igrog_gadget.simulate import SimulationSpec, simulate_to_file

QUICK = ["training.max_steps=150", "calibration.num_training_pairs=8000", "training.plateau_patience=0"]
LAST_IN_SLICE = 1 << (ismrmrd.ACQ_LAST_IN_SLICE - 1)


@pytest.fixture(scope="module")
def radial64(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("frames") / "radial64.h5"
    simulate_to_file(path, SimulationSpec(matrix=64, coils=4, spokes=64, acs=24, seed=7))
    return path


@pytest.fixture(scope="module")
def reference(radial64, tmp_path_factory):
    """The unedited file replayed once with QUICK: the output each edited file must equal."""
    return replay_file(radial64, tmp_path_factory.mktemp("frames_ref") / "ref_out.h5", load_config("basic", overrides=QUICK))


def rewrite_imaging(source: Path, target: Path, reorder) -> None:
    """Copy ``source`` with its imaging acquisitions replaced by ``reorder(list of acquisitions)``."""

    def edit(acquisitions: list[ismrmrd.Acquisition]) -> list[ismrmrd.Acquisition]:
        imaging = [a for a in acquisitions if a.traj.size]
        return [a for a in acquisitions if not a.traj.size] + reorder(imaging)

    copy_acquisitions(source, target, edit)


def test_last_flag_mid_scan_does_not_split_the_frame(radial64, tmp_path):
    """mrpro's writer: interleaved order, ACQ_LAST_IN_SLICE on the largest e1 (spoke 31 of 64)."""

    def interleave(imaging):
        order = [a for a in imaging if a.idx.kspace_encode_step_1 % 2 == 1] + [
            a for a in imaging if a.idx.kspace_encode_step_1 % 2 == 0
        ]
        for acq in order:
            acq.clear_all_flags()
        assert order[31].idx.kspace_encode_step_1 == 63  # the largest e1 sits mid-scan
        head = order[31].getHead()
        head.flags = LAST_IN_SLICE
        order[31].setHead(head)
        return order

    mixed = tmp_path / "interleaved.h5"
    rewrite_imaging(radial64, mixed, interleave)
    report = replay_file(mixed, tmp_path / "out.h5", load_config("basic", overrides=QUICK))
    assert len(report.frames) == 1
    assert int(report.frames[0].hits.sum()) >= 64 * 128 - 200  # every spoke gridded
    config = load_config("basic")
    case = load_case("c", radial64, config)
    nn = grid_nearest_neighbour(case.frame.flat_samples(), case.frame.flat_coords(), case.frame.matrix)
    error = nrmse_on_sampled(report.frames[0].kspace, nn.hits, case.truth)
    assert error < 0.6 * nrmse_on_sampled(nn.kspace, nn.hits, case.truth)


def test_duplicated_readouts_do_not_make_a_second_frame(radial64, reference, tmp_path):
    def duplicate(imaging):
        return imaging[:11] + [imaging[10]] + imaging[11:] + [imaging[-1]]  # spoke 10 twice, last twice

    duplicated = tmp_path / "duplicated.h5"
    rewrite_imaging(radial64, duplicated, duplicate)
    config = load_config("basic", overrides=QUICK)
    report = replay_file(duplicated, tmp_path / "dup_out.h5", config)
    assert len(report.frames) == 1
    np.testing.assert_array_equal(report.frames[0].kspace, reference.frames[0].kspace)


def test_normalized_trajectory_overshooting_half_is_read_as_normalized(tmp_path):
    """A few samples per spoke reach |k| = 0.52 (gradient overshoot): normalized, those dropped."""
    source = tmp_path / "norm.h5"
    simulate_to_file(source, SimulationSpec(matrix=64, coils=4, spokes=64, acs=24, trajectory_units="normalized", seed=8))

    def overshoot(imaging):
        for acq in imaging:
            traj = acq.traj
            traj[:2] *= 1.04  # the spoke's first samples: |k| up to 0.52
            acq.traj[:] = traj
        return imaging

    edited = tmp_path / "overshoot.h5"
    rewrite_imaging(source, edited, overshoot)
    report = replay_file(edited, tmp_path / "out.h5", load_config("basic", overrides=QUICK))
    hits = report.frames[0].hits
    assert int((hits > 0).sum()) > 0.5 * hits.size  # gridded on the 64 x 64 grid, not 5 points
    config = load_config("basic")
    case = load_case("c", source, config)
    nn = grid_nearest_neighbour(case.frame.flat_samples(), case.frame.flat_coords(), case.frame.matrix)
    assert nrmse_on_sampled(report.frames[0].kspace, nn.hits, case.truth) < 0.6 * nrmse_on_sampled(nn.kspace, nn.hits, case.truth)


def test_discard_pre_and_post_are_honoured(radial64, reference, tmp_path):
    """Siemens-style discard_pre = discard_post = 4 with garbage in those samples: the same output
    as the file without them."""

    def pad(imaging):
        padded = []
        for acq in imaging:
            head = acq.getHead()
            head.number_of_samples = acq.number_of_samples + 8
            head.discard_pre = 4
            head.discard_post = 4
            head.center_sample = acq.center_sample + 4
            wide = ismrmrd.Acquisition(head)
            wide.data[:] = 1e3  # garbage the discards must remove
            wide.data[:, 4:-4] = acq.data
            wide.traj[:] = 1e3
            wide.traj[4:-4] = acq.traj
            padded.append(wide)
        return padded

    edited = tmp_path / "discards.h5"
    rewrite_imaging(radial64, edited, pad)
    config = load_config("basic", overrides=QUICK)
    report = replay_file(edited, tmp_path / "out.h5", config)
    np.testing.assert_array_equal(report.frames[0].kspace, reference.frames[0].kspace)


def test_calibration_and_imaging_acs_lines_calibrate(radial64, reference, tmp_path):
    """Cartesian ACS lines flagged ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING (no trajectory) in a
    radial scan: used as calibration, exactly like ACQ_IS_PARALLEL_CALIBRATION lines."""
    edited = tmp_path / "cal_and_imaging.h5"
    changed = 0

    def edit(acquisitions: list[ismrmrd.Acquisition]) -> list[ismrmrd.Acquisition]:
        nonlocal changed
        for acq in acquisitions:
            if acq.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION):
                acq.clear_flag(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)
                acq.set_flag(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING)
                changed += 1
        return acquisitions

    copy_acquisitions(radial64, edited, edit)
    assert changed == 24
    config = load_config("basic", overrides=QUICK)
    report = replay_file(edited, tmp_path / "out.h5", config)
    assert report.frames[0].report.training.calibration == reference.frames[0].report.training.calibration == "joint"
    np.testing.assert_array_equal(report.frames[0].kspace, reference.frames[0].kspace)
