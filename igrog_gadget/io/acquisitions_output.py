"""The ``acquisitions`` output of a stream (the gadget's ``output=acquisitions``, ``igrog pipe``):
what each gridded frame becomes, in order.

Per frame: its calibration block as calibration lines when it is the first frame of its
calibration key (``[output] calibration``, ``igrog_gadget.io.calibration_lines``), its Cartesian
lines (``cartesian_acquisitions``), then its ``igrog_weights`` image (``[output] weights``,
``igrog_gadget.io.frame_images``) — the replay file's acquisitions in the same order. Scan
counters continue the count of acquisitions the stream has sent (pass-through ones included:
``count_passed_through``).
"""

from __future__ import annotations

import ismrmrd

from igrog_gadget.io.calibration_lines import CalibrationLedger, calibration_acquisitions
from igrog_gadget.io.convert import cartesian_acquisitions, image_from_item
from igrog_gadget.io.frame_images import weights_image
from igrog_gadget.scan import GriddedFrame


class AcquisitionsOutput:
    """Turns gridded frames into the ISMRMRD items of a stream's ``acquisitions`` output."""

    def __init__(self, fov_mm: tuple[float, float, float], calibration: bool, weights: bool) -> None:
        """``fov_mm``: the gridded FOV (x, y, z) the weights images state."""
        self.fov_mm = fov_mm
        self.weights = weights
        self._calibration = CalibrationLedger(calibration)
        self.acquisitions_sent = 0
        """Acquisitions of the stream so far (the next scan counter)."""
        self._frames = 0

    def count_passed_through(self) -> None:
        """One acquisition passed through (it takes a scan counter)."""
        self.acquisitions_sent += 1

    def items(self, frame: GriddedFrame) -> list[ismrmrd.Acquisition | ismrmrd.Image]:
        """The frame's calibration lines (first frame of its key), lines and weights image."""
        items: list[ismrmrd.Acquisition | ismrmrd.Image] = []
        if self._calibration.due(frame):
            items += calibration_acquisitions(frame, self.acquisitions_sent)
        items += cartesian_acquisitions(frame, first_scan_counter=self.acquisitions_sent + len(items))
        self.acquisitions_sent += len(items)
        self._frames += 1
        if self.weights:
            items.append(image_from_item(weights_image(frame, self.fov_mm, self._frames)))
        return items
