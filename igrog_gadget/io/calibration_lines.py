"""The calibration data passed on with the gridded output (``[output] calibration``).

A gridded frame carries its calibration block (``GriddedFrame.calibration``): the Cartesian
calibration data the product calibrated from, on the output grid and in the output's coils —
the scan's ACS lines placed on the grid, or the block the joint or self-calibration solved from
the ACS lines and the densely sampled centre. A Cartesian reconstruction downstream (ESPIRiT,
GRAPPA) calibrates from it as it would from the scan's own ACS lines.

As acquisitions (replay file, ``output=acquisitions``): one per block row (ky; in 3D per
(ky, kz)), before the first frame of each calibration key, flags ``ACQ_IS_PARALLEL_CALIBRATION``
(+ FIRST/LAST_IN_ENCODE_STEP1 on the first/last row), ``number_of_samples`` = the block's width,
``center_sample`` = the sample at kx = 0 (so a reader places sample ``s`` at
``kx = s - center_sample``, as for an asymmetric echo), ``kspace_encode_step_1`` /
``kspace_encode_step_2`` the output grid's line (k = 0 at n // 2), encoding_space_ref 0,
every other header field as the frame's Cartesian lines (``cartesian_acquisitions``).
"""

from __future__ import annotations

import ismrmrd
import numpy as np

from igrog_gadget.io.convert import line_template
from igrog_gadget.numerics.dimensions import dimensions, volume_shape
from igrog_gadget.scan import GriddedFrame, flag_mask


def calibration_acquisitions(frame: GriddedFrame, first_scan_counter: int = 0) -> list[ismrmrd.Acquisition]:
    """The calibration block of ``frame`` as calibration acquisitions (see the module docstring).

    Args:
        frame: kspace (coils, ny, nx) or (coils, nz, ny, nx); ``calibration`` a block in the
            same coils whose [0, 0] lies at (kx0, ky0) (3D: [0, 0, 0] at (kx0, ky0, kz0)).
        first_scan_counter: scan counter of the first line.

    Returns:
        One acquisition per block row, kz outer, ky inner; none when the frame has no block.
    """
    block = frame.calibration
    if block is None:
        return []
    kspace = np.ascontiguousarray(block.kspace, dtype=np.complex64)
    coils = kspace.shape[0]
    rows = kspace.reshape(coils, -1, kspace.shape[-1])  # (coils, [az *] ay, ax)
    ay, ax = block.shape[-2], block.shape[-1]
    nz, ny, _ = volume_shape(frame.kspace.shape[1:])
    counters = dimensions(block.dims).encode_counters  # kspace_encode_step_1[, _2]
    if not 0 <= -block.kx0 < ax:
        raise ValueError(f"calibration block columns kx {block.kx0}..{block.kx0 + ax - 1} do not hold kx = 0")
    template = line_template(frame, coils, ax)
    template.center_sample = -block.kx0
    template.flags = flag_mask(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)
    acquisitions = []
    for row in range(rows.shape[1]):
        iz, iy = divmod(row, ay)
        head = ismrmrd.AcquisitionHeader.from_buffer_copy(template)
        lines = (block.ky0 + iy + ny // 2, block.kz0 + iz + nz // 2)  # the output grid's (ky, kz) line
        for counter, line in zip(counters, lines):  # a 2D frame keeps its partition counter
            setattr(head.idx, counter, line)
        head.scan_counter = int(first_scan_counter) + row
        if row == 0:
            head.flags |= flag_mask(ismrmrd.ACQ_FIRST_IN_ENCODE_STEP1)
        if row == rows.shape[1] - 1:
            head.flags |= flag_mask(ismrmrd.ACQ_LAST_IN_ENCODE_STEP1)
        acquisition = ismrmrd.Acquisition(head)
        acquisition.data[:] = rows[:, row, :]
        acquisitions.append(acquisition)
    return acquisitions


class CalibrationLedger:
    """Which calibration keys' blocks an output has passed on (each once, before its first frame)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._passed: set[tuple[int, ...]] = set()

    def due(self, frame: GriddedFrame) -> bool:
        """Whether ``frame``'s block is to be passed on now (and mark it passed on)."""
        if not self.enabled or frame.calibration is None or frame.calibration_key in self._passed:
            return False
        self._passed.add(frame.calibration_key)
        return True
