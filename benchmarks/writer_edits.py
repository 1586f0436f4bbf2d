"""Edits that turn a simulated ISMRMRD file into one as other writers make it.

Each edit is ``(header object) -> None`` and/or ``(acquisition, matrix) -> acquisition | None``
applied by ``copy_dataset``; used by the tests and by ``scanner_files_benchmark.py``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import ismrmrd

from igrog_gadget.io.acquisitions import copy_acquisitions, each_acquisition, read_header_xml

HeaderEdit = Callable[[object], None]
AcquisitionEdit = Callable[[ismrmrd.Acquisition, int], "ismrmrd.Acquisition | None"]

CALIBRATION_MATRIX = 32
"""Side of the separate calibration encoding ``add_calibration_encoding`` declares."""


def keep_header(header: object) -> None:
    """No header change."""


def copy_dataset(source: Path, target: Path, change_header: HeaderEdit, change_acquisition: AcquisitionEdit) -> Path:
    """``target`` = ``source`` with ``change_header(header object)`` and every acquisition through
    ``change_acquisition(acq, N)`` (None drops it; N = the first encoding's matrix x)."""
    header = ismrmrd.xsd.CreateFromDocument(read_header_xml(source))
    matrix = int(header.encoding[0].encodedSpace.matrixSize.x)
    change_header(header)
    edit = each_acquisition(lambda _, acq: change_acquisition(acq, matrix))
    copy_acquisitions(source, target, edit, header_xml=ismrmrd.xsd.ToXML(header))
    return target


def add_calibration_encoding(header: object) -> None:
    """A second <encoding>: Cartesian 32 x 32 with the imaging FOV, lines 0..31 centred on 16,
    readouts of 64 samples (2x oversampling), as a separate low-resolution calibration scan."""
    size = CALIBRATION_MATRIX
    enc = copy.deepcopy(header.encoding[0])
    enc.trajectory = ismrmrd.xsd.trajectoryType.CARTESIAN
    enc.trajectoryDescription = None
    for space in (enc.encodedSpace, enc.reconSpace):
        space.matrixSize.x = space.matrixSize.y = size
    enc.encodingLimits.kspace_encoding_step_0 = ismrmrd.xsd.limitType(minimum=0, maximum=2 * size - 1, center=size)
    enc.encodingLimits.kspace_encoding_step_1 = ismrmrd.xsd.limitType(minimum=0, maximum=size - 1, center=size // 2)
    header.encoding.append(enc)


def as_calibration_scan(ref: int, own_numbering: bool) -> AcquisitionEdit:
    """ACS lines cut to the calibration encoding's 64-sample readout, ``encoding_space_ref = ref``,
    e1 renumbered 0..31 (``own_numbering``) or left on the main grid's numbering."""
    size = CALIBRATION_MATRIX

    def change(acq: ismrmrd.Acquisition, matrix: int) -> ismrmrd.Acquisition:
        if not acq.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION):
            return acq
        head = acq.getHead()
        head.encoding_space_ref = ref
        if own_numbering:
            head.idx.kspace_encode_step_1 = acq.idx.kspace_encode_step_1 - matrix // 2 + size // 2
        centre = acq.center_sample
        head.number_of_samples = 2 * size
        head.center_sample = size
        cut = ismrmrd.Acquisition(head)
        cut.data[:] = acq.data[:, centre - size : centre + size]
        return cut

    return change


def calibration_lines_with_zero_trajectory(acq: ismrmrd.Acquisition, matrix: int) -> ismrmrd.Acquisition:
    """ACS lines given trajectory_dimensions = 2 and an all-zero traj (mrpro's test-data writer
    reuses one acquisition buffer and leaves the calibration lines' traj at zero)."""
    if not acq.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION):
        return acq
    head = acq.getHead()
    head.trajectory_dimensions = 2
    zeroed = ismrmrd.Acquisition(head)
    zeroed.data[:] = acq.data
    zeroed.traj[:] = 0.0
    return zeroed


def without_calibration_lines(acq: ismrmrd.Acquisition, matrix: int) -> ismrmrd.Acquisition | None:
    """Drops the ACS lines."""
    return None if acq.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION) else acq


def without_noise_scans(acq: ismrmrd.Acquisition, matrix: int) -> ismrmrd.Acquisition | None:
    """Drops the noise scans (a file whose writer keeps none)."""
    return None if acq.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT) else acq


def noise_scans_scaled(factor: float) -> AcquisitionEdit:
    """Noise scans whose samples are ``factor`` times the receiver's (a writer that scales them)."""

    def change(acq: ismrmrd.Acquisition, matrix: int) -> ismrmrd.Acquisition:
        if acq.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT):
            acq.data[:] = acq.data * factor
        return acq

    return change


def shorten_even_spokes(cut: int) -> AcquisitionEdit:
    """Spokes of even e1 lose their first ``cut`` samples (an asymmetric echo on half the spokes)."""

    def change(acq: ismrmrd.Acquisition, matrix: int) -> ismrmrd.Acquisition:
        if not acq.traj.size or acq.idx.kspace_encode_step_1 % 2:
            return acq
        head = acq.getHead()
        head.number_of_samples = acq.number_of_samples - cut
        head.center_sample = acq.center_sample - cut
        short = ismrmrd.Acquisition(head)
        short.data[:] = acq.data[:, cut:]
        short.traj[:] = acq.traj[cut:]
        return short

    return change


def last_flag_at(e1_max: int) -> AcquisitionEdit:
    """Clears first/last flags of imaging acquisitions; sets ACQ_LAST_IN_SLICE on e1 = ``e1_max``."""

    def change(acq: ismrmrd.Acquisition, matrix: int) -> ismrmrd.Acquisition:
        if not acq.traj.size:
            return acq
        for flag in (ismrmrd.ACQ_FIRST_IN_SLICE, ismrmrd.ACQ_LAST_IN_SLICE, ismrmrd.ACQ_LAST_IN_REPETITION,
                     ismrmrd.ACQ_LAST_IN_MEASUREMENT):
            acq.clear_flag(flag)
        if acq.idx.kspace_encode_step_1 == e1_max:
            acq.set_flag(ismrmrd.ACQ_LAST_IN_SLICE)
        return acq

    return change


def overshoot_to(limit: float, samples: int = 2) -> AcquisitionEdit:
    """Scales the first ``samples`` of each normalized spoke so that |k| reaches ``limit``."""

    def change(acq: ismrmrd.Acquisition, matrix: int) -> ismrmrd.Acquisition:
        if acq.traj.size:
            traj = acq.traj
            traj[:samples] *= limit / 0.5
            acq.traj[:] = traj
        return acq

    return change
