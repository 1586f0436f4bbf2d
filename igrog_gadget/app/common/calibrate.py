"""Choosing the calibration block of a frame: Cartesian ACS lines, else self-calibration."""

from __future__ import annotations

import logging

from igrog_gadget.app.common.frame import FrameInputs
from igrog_gadget.config import CalibrationConfig
from igrog_gadget.errors import CalibrationError
from igrog_gadget.gridding.calibration import CalibrationBlock, acs_from_cartesian_lines, self_calibrate

logger = logging.getLogger(__name__)


def calibration_block(frame: FrameInputs, config: CalibrationConfig) -> CalibrationBlock:
    """The k-space calibration block of ``frame`` per ``config.source`` (auto | acs | self).

    Raises:
        CalibrationError: no ACS when ``acs`` is asked for, or neither ACS nor a dense centre.
    """
    if config.source in ("auto", "acs") and frame.calibration_lines:
        return acs_from_cartesian_lines(frame.calibration_lines, min_size=config.acs_min_size)
    if config.source == "acs":
        raise CalibrationError(
            "calibration.source = acs but the data hold no calibration lines "
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
