"""Choosing the calibration block of a frame.

- ``acs``: the Cartesian calibration lines alone.
- ``self``: the densely sampled centre of the non-Cartesian data (CG-NUFFT solve).
- ``joint``: one CG-NUFFT solve over the ACS lines *and* the non-Cartesian samples of the
  centre. Its block has the ACS's full coverage but far less noise, which matters: the training
  pairs take their targets and (interpolated) sources from the same block, so its noise would
  correlate sources with targets and bias the kernels towards the nearest sample.
- ``auto`` (default): ``joint`` when there are ACS lines, else ``self``.
"""

from __future__ import annotations

import logging

import numpy as np

from igrog_gadget.app.common.frame import FrameInputs
from igrog_gadget.config import CalibrationConfig
from igrog_gadget.errors import CalibrationError
from igrog_gadget.gridding.calibration import CalibrationBlock, acs_from_cartesian_lines, self_calibrate

logger = logging.getLogger(__name__)


def calibration_block(frame: FrameInputs, config: CalibrationConfig) -> CalibrationBlock:
    """The k-space calibration block of ``frame`` per ``config.source`` (auto | acs | self | joint).

    Raises:
        CalibrationError: no ACS when ``acs`` is asked for, or neither ACS nor a dense centre.
    """
    if config.source == "acs" and frame.calibration_lines:
        return acs_from_cartesian_lines(frame.calibration_lines, min_size=config.acs_min_size)
    if config.source in ("auto", "joint") and frame.calibration_lines:
        try:
            acs: CalibrationBlock | None = acs_from_cartesian_lines(frame.calibration_lines, min_size=config.acs_min_size)
        except CalibrationError as error:  # e.g. lines on every other row of an oversampled grid
            logger.info("the ACS lines alone give no block (%s); joint solve only", error)
            acs = None
        size = max(config.selfcal_size, min(acs.shape) if acs is not None else 0)
        samples = np.concatenate([frame.flat_samples()] + [data for data, _ in frame.calibration_lines], axis=1)
        coords = np.concatenate([frame.flat_coords()] + [pos for _, pos in frame.calibration_lines], axis=0)
        try:
            block = self_calibrate(
                samples,
                coords,
                size=size,
                grid=max(config.selfcal_grid, 2 * size),
                iterations=config.selfcal_iterations,
                min_coverage=config.selfcal_min_coverage,
            )
        except CalibrationError as error:  # centre too sparse around the ACS: the ACS block alone
            if acs is None:
                raise
            logger.info("joint calibration not possible (%s); using the ACS block %s", error, acs.shape)
            return acs
        block.source = "joint"
        return block
    if config.source in ("acs", "joint"):
        raise CalibrationError(
            f"calibration.source = {config.source} but the data hold no calibration lines "
            "(ACQ_IS_PARALLEL_CALIBRATION); use source = auto or self"
        )
    return self_calibrate(
        frame.flat_samples(),
        frame.flat_coords(),
        size=config.selfcal_size,
        grid=config.selfcal_grid,
        iterations=config.selfcal_iterations,
        min_coverage=config.selfcal_min_coverage,
    )
