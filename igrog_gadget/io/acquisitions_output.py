"""The ``acquisitions`` output (the replay file, the gadget's ``output=acquisitions``, ``igrog
pipe``): what each gridded frame becomes, in order.

Per frame: its calibration block as calibration lines when it is the first frame of its
calibration key (``[output] calibration``, ``igrog_gadget.io.calibration_lines``), its Cartesian
lines (``cartesian_acquisitions``), then its ``igrog_weights`` image (``[output] weights``,
``igrog_gadget.io.frame_images``; the replay file keeps them in their own series instead). Scan
counters continue the count of acquisitions the output holds (pass-through ones included:
``count_passed_through``, or ``first_scan_counter``).
"""

from __future__ import annotations

import ismrmrd

from igrog_gadget.io.calibration_lines import CalibrationLedger, calibration_acquisitions
from igrog_gadget.io.convert import cartesian_acquisitions, image_from_item
from igrog_gadget.io.frame_images import weights_image
from igrog_gadget.io.output_geometry import OutputGeometry
from igrog_gadget.scan import GriddedFrame


class AcquisitionsOutput:
    """Turns gridded frames into the ISMRMRD items of an ``acquisitions`` output."""

    def __init__(self, calibration: bool, weights: bool, first_scan_counter: int = 0) -> None:
        """``calibration``: pass the calibration blocks on; ``weights``: follow each frame by its
        weights image (not in the replay file, which holds them in their own series)."""
        self.weights = weights
        self._calibration = CalibrationLedger(calibration)
        self.acquisitions_sent = first_scan_counter
        """Acquisitions of the output so far (the next scan counter)."""
        self._frames = 0

    def count_passed_through(self) -> None:
        """One acquisition passed through (it takes a scan counter)."""
        self.acquisitions_sent += 1

    def items(self, frame: GriddedFrame, geometry: OutputGeometry | None = None) -> list[ismrmrd.Acquisition | ismrmrd.Image]:
        """The frame's calibration lines (first frame of its key), lines and weights image (on
        ``geometry``, the output's geometry; needed with ``weights``)."""
        if self.weights and geometry is None:
            raise ValueError("the weights images of an acquisitions output need the output's geometry")
        items: list[ismrmrd.Acquisition | ismrmrd.Image] = []
        if self._calibration.due(frame):
            items += calibration_acquisitions(frame, self.acquisitions_sent)
        items += cartesian_acquisitions(frame, first_scan_counter=self.acquisitions_sent + len(items))
        self.acquisitions_sent += len(items)
        self._frames += 1
        if self.weights and geometry is not None:
            items.append(image_from_item(weights_image(frame, geometry, self._frames)))
        return items
