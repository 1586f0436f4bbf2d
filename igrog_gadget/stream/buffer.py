"""Buffering readouts into frames and calibration sets as they arrive.

Routing (flag predicates of ``Readout``): noise and other auxiliary readouts pass through;
calibration readouts (``ACQ_IS_PARALLEL_CALIBRATION``, ``..._AND_IMAGING``) are kept per
calibration key; imaging readouts are kept per frame key until the frame is complete.

A frame is complete when a readout of it carries ``ACQ_LAST_IN_SLICE`` (or
``ACQ_LAST_IN_REPETITION`` / ``ACQ_LAST_IN_MEASUREMENT``); frames still open when the
stream closes are completed then. Calibration lines must arrive before the readout that
completes the frame they calibrate (the ISMRMRD/scanner order).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from igrog_gadget.errors import InputDataError
from igrog_gadget.scan import (
    FLAG_LAST_IN_MEASUREMENT,
    FLAG_LAST_IN_REPETITION,
    FLAG_LAST_IN_SLICE,
    FRAME_KEY_FIELDS,
    Readout,
    has_flag,
)

logger = logging.getLogger(__name__)

#: Counters that select the calibration a frame uses (repetitions, averages... share it).
CALIBRATION_KEY_FIELDS = ("slice", "contrast", "kspace_encode_step_2")


def calibration_key(readout: Readout) -> tuple[int, ...]:
    """Calibration key of a readout (slice, contrast, encode step 2)."""
    return tuple(int(readout.idx.get(name, 0)) for name in CALIBRATION_KEY_FIELDS)


def calibration_key_of_frame(frame_key: tuple[int, ...]) -> tuple[int, ...]:
    """Calibration key from a frame key (see ``FRAME_KEY_FIELDS``)."""
    values = dict(zip(FRAME_KEY_FIELDS, frame_key))
    return tuple(values[name] for name in CALIBRATION_KEY_FIELDS)


@dataclass
class CompletedFrame:
    """Imaging readouts of one frame plus the calibration lines known for it."""

    frame_key: tuple[int, ...]
    readouts: list[Readout]
    calibration: list[Readout]
    calibration_key: tuple[int, ...]


@dataclass
class ReadoutBuffer:
    """Collects readouts; ``add`` returns frames completed by the readout, ``close`` the rest."""

    max_coils: int | None = None
    """receiverChannels of the header: acquisitions may carry fewer (coils reduced upstream,
    e.g. Gadgetron's PCACoilGadget + CoilReductionGadget), never more."""
    expected_coils: int | None = None
    frames: dict[tuple[int, ...], list[Readout]] = field(default_factory=dict)
    calibration: dict[tuple[int, ...], list[Readout]] = field(default_factory=dict)

    def add(self, readout: Readout) -> list[CompletedFrame]:
        """Route one readout (must be calibration or imaging); completed frames, in order."""
        self._check_coils(readout)
        if readout.is_calibration():
            self.calibration.setdefault(calibration_key(readout), []).append(readout)
        if not readout.is_imaging():
            return []
        key = readout.frame_key()
        self.frames.setdefault(key, []).append(readout)
        ends_frame = any(
            has_flag(readout.flags, bit) for bit in (FLAG_LAST_IN_SLICE, FLAG_LAST_IN_REPETITION, FLAG_LAST_IN_MEASUREMENT)
        )
        return [self._complete(key)] if ends_frame else []

    def close(self) -> list[CompletedFrame]:
        """Complete every frame still open (end of stream), in arrival order."""
        return [self._complete(key) for key in list(self.frames)]

    def _complete(self, key: tuple[int, ...]) -> CompletedFrame:
        readouts = self.frames.pop(key)
        cal_key = calibration_key_of_frame(key)
        return CompletedFrame(key, readouts, list(self.calibration.get(cal_key, [])), cal_key)

    def is_array_readout(self, readout: Readout) -> bool:
        """Whether ``readout`` carries the receive array's coils (the first count seen, unless
        ``expected_coils`` was given); another count (a body-coil reference interleaved with the
        array data, say) is not gridded.

        Raises:
            InputDataError: more coils than the header's receiverChannels.
        """
        if self.max_coils is not None and readout.num_coils > self.max_coils:
            raise InputDataError(
                f"acquisition {readout.scan_counter}: {readout.num_coils} coils, more than the header's "
                f"receiverChannels = {self.max_coils} (field: active_channels)"
            )
        if self.expected_coils is None:
            self.expected_coils = readout.num_coils
            if self.max_coils is not None and readout.num_coils < self.max_coils:
                logger.info(
                    "acquisitions carry %d of the header's %d receiver channels (coils reduced upstream)",
                    readout.num_coils, self.max_coils,
                )
        return readout.num_coils == self.expected_coils

    def _check_coils(self, readout: Readout) -> None:
        if not self.is_array_readout(readout):
            raise InputDataError(
                f"acquisition {readout.scan_counter}: {readout.num_coils} coils, but earlier acquisitions "
                f"have {self.expected_coils} (field: active_channels)"
            )
