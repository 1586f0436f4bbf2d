"""Buffering readouts into frames and calibration sets as they arrive.

Routing (flag predicates of ``Readout``): noise and other auxiliary readouts pass through;
calibration readouts (``ACQ_IS_PARALLEL_CALIBRATION``, ``..._AND_IMAGING``) are kept per
calibration key; imaging readouts are kept per frame key until the frame is complete.

Frame boundaries come from the counters: readouts of one frame share the frame key
(``FRAME_KEY_FIELDS``), and when the header states the readouts per frame
(``encodingLimits.kspace_encoding_step_1``, non-Cartesian data: spokes or interleaves) a frame
is complete once it holds that many distinct ``kspace_encode_step_1`` values; a readout whose
counters repeat an earlier one is a duplicate and dropped. ``ACQ_LAST_IN_SLICE`` (or
``..._REPETITION`` / ``..._MEASUREMENT``) is only a hint then: it completes a frame that holds
at least ``LAST_FLAG_MIN_SHARE`` of its readouts (writers put it on the largest e1, which in an
interleaved order comes mid-scan), and alone decides without such limits. Frames still open
when the stream closes are completed then, with a warning when readouts are missing. Calibration lines must arrive before the readout that
completes the frame they calibrate (the ISMRMRD/scanner order).

A 3D scan (``volumetric``: gridded onto one (nx, ny, nz) grid) has one frame per counter set
without the partition: its readouts' ``kspace_encode_step_2`` (a stack-of-spirals' kz plane) is
part of the readout's identity (``(e1, e2)`` pairs count towards the readouts per frame), not of
the frame key, and its calibration lines of every ``kspace_encode_step_2`` (the kz lines of a 3D
ACS block) calibrate it. Writers number a 3D frame's readouts in two ways: e1 across the volume
(a kooshball's spokes; a stack-of-spirals' readouts 0 .. interleaves x partitions - 1), then a
frame holds the e1 limits' count of readouts; or e1 per partition (the interleaves of each kz
plane, e1 repeating in every e2), then it holds e1 count x e2 count (``partitions_per_frame``,
from the e2 limits). The second is recognised from the data (``_FrameSteps.per_partition``): an
e1 value that comes in two partitions, or readouts that all lie in one kz plane (a stack
acquired partition by partition: its first plane is no complete volume).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from igrog_gadget.errors import InputDataError
from igrog_gadget.scan import (
    CALIBRATION_KEY_FIELDS,
    FLAG_LAST_IN_MEASUREMENT,
    FLAG_LAST_IN_REPETITION,
    FLAG_LAST_IN_SLICE,
    FRAME_KEY_FIELDS,
    Readout,
    calibration_key_of_frame,
    has_flag,
)

logger = logging.getLogger(__name__)

#: Share of a frame's readouts (from the header's e1 limits) a LAST flag needs to complete it.
LAST_FLAG_MIN_SHARE = 0.9


def calibration_key(readout: Readout) -> tuple[int, ...]:
    """Calibration key of a readout (slice, contrast, encode step 2)."""
    return tuple(int(readout.idx.get(name, 0)) for name in CALIBRATION_KEY_FIELDS)


@dataclass
class CompletedFrame:
    """Imaging readouts of one frame plus the calibration lines known for it."""

    frame_key: tuple[int, ...]
    readouts: list[Readout]
    calibration: list[Readout]
    calibration_key: tuple[int, ...]
    volumetric: bool = False
    """Whether the frame is gridded in 3D (see ``ReadoutBuffer.volumetric``)."""

    @property
    def dwell_us(self) -> float:
        """The imaging readouts' dwell time (median ``sample_time_us``); 0 when unknown."""
        dwells = [readout.sample_time_us for readout in self.readouts if readout.sample_time_us > 0]
        return float(np.median(dwells)) if dwells else 0.0


@dataclass
class _FrameSteps:
    """What an open frame holds: its distinct readout identities, and in 3D what tells how its
    readouts are numbered."""

    steps: set = field(default_factory=set)
    """Distinct kspace_encode_step_1 values (3D: (e1, e2) pairs)."""
    step1: set[int] = field(default_factory=set)
    """3D: distinct e1 values."""
    plane: float | None = None
    """3D: the kz every readout so far lies at (None before the first; NaN once they differ)."""

    def add(self, step, readout: Readout) -> None:
        self.steps.add(step)
        if isinstance(step, tuple):
            self.step1.add(step[0])
            self.plane = _common_plane(self.plane, readout)

    @property
    def per_partition(self) -> bool:
        """3D: e1 numbers the readouts of each partition (an e1 value in two partitions, or all
        readouts in one kz plane), not those of the volume."""
        return len(self.steps) > len(self.step1) or (self.plane is not None and self.plane == self.plane)


def _common_plane(plane: float | None, readout: Readout) -> float:
    """The kz shared by ``plane`` (None: none yet) and every sample of ``readout`` (NaN when
    they differ, or the readout carries no kz column)."""
    traj = readout.traj
    if traj is None or traj.ndim != 2 or traj.shape[1] < 3 or traj.shape[0] == 0 or (plane is not None and plane != plane):
        return float("nan")
    kz = traj[:, 2]
    first = float(kz[0])
    tolerance = 1e-6 * max(1.0, float(np.max(np.abs(traj))))
    if np.any(np.abs(kz - first) > tolerance) or (plane is not None and abs(first - plane) > tolerance):
        return float("nan")
    return first


@dataclass
class ReadoutBuffer:
    """Collects readouts; ``add`` returns frames completed by the readout, ``close`` the rest."""

    max_coils: int | None = None
    """receiverChannels of the header: acquisitions may carry fewer (coils reduced upstream,
    e.g. Gadgetron's PCACoilGadget + CoilReductionGadget), never more."""
    expected_coils: int | None = None
    readouts_per_frame: int | None = None
    """Distinct kspace_encode_step_1 values of a complete frame (from the header), if known."""
    partitions_per_frame: int | None = None
    """Distinct kspace_encode_step_2 values of the header's e2 limits: in 3D, a frame whose e1
    numbers the readouts of each partition holds ``readouts_per_frame`` x this many."""
    frames: dict[tuple[int, ...], list[Readout]] = field(default_factory=dict)
    calibration: dict[tuple[int, ...], list[Readout]] = field(default_factory=dict)
    max_buffered_samples: int | None = None
    """Most complex samples (coils x samples) held at once in open frames and calibration lines
    (``ResourceLimits.max_buffered_samples``); None = no bound."""
    buffered_samples: int = 0
    volumetric: bool = False
    """Whether the scan is gridded in 3D (one frame over all kspace_encode_step_2): set by
    ``mark_volumetric`` (the pipeline calls it at the first imaging readout that
    ``igrog_gadget.stream.frames.is_volumetric`` finds 3D)."""
    duplicates: int = 0
    """Imaging readouts dropped because their counters repeated an earlier readout's."""
    _steps: dict[tuple[int, ...], _FrameSteps] = field(default_factory=dict)
    _completed: set[tuple[int, ...]] = field(default_factory=set)
    """Frame keys already completed (a later fragment with the same counters repeats them)."""

    def add(self, readout: Readout) -> list[CompletedFrame]:
        """Route one readout (must be calibration or imaging); completed frames, in order."""
        self._check_coils(readout)
        size = readout.num_coils * readout.num_samples
        if self.max_buffered_samples is not None and self.buffered_samples + size > self.max_buffered_samples:
            raise InputDataError(
                f"acquisition {readout.scan_counter}: buffering it would hold {self.buffered_samples + size} samples "
                f"(coils x samples) of open frames and calibration, beyond the resource limit "
                f"max_buffered_samples = {self.max_buffered_samples}; frames are not completed (check the "
                "counters and the header's encoding limits)"
            )
        if readout.is_calibration():
            self.buffered_samples += size
            self.calibration.setdefault(calibration_key(readout), []).append(readout)
        if not readout.is_imaging():
            return []
        key = self.frame_key_of(readout)
        step: int | tuple[int, int] = int(readout.idx.get("kspace_encode_step_1", 0))
        if self.volumetric:
            step = (int(readout.idx.get("kspace_encode_step_1", 0)), int(readout.idx.get("kspace_encode_step_2", 0)))
        held = self._steps.setdefault(key, _FrameSteps())
        if self.readouts_per_frame is not None and step in held.steps:
            self.duplicates += 1
            if self.duplicates == 1:
                logger.warning(
                    "acquisition %d repeats the counters of an earlier readout (frame %s, e1 %d): duplicate dropped",
                    readout.scan_counter, key, step,
                )
            return []
        held.add(step, readout)
        self.frames.setdefault(key, []).append(readout)
        self.buffered_samples += size
        flagged = any(
            has_flag(readout.flags, bit) for bit in (FLAG_LAST_IN_SLICE, FLAG_LAST_IN_REPETITION, FLAG_LAST_IN_MEASUREMENT)
        )
        expected = self.expected_readouts(key)
        if expected is None:
            return [self._complete(key)] if flagged else []
        if len(held.steps) >= expected:
            return [self._complete(key)]
        if flagged and len(held.steps) >= LAST_FLAG_MIN_SHARE * expected:
            return [self._complete(key)]
        if flagged:
            logger.info(
                "acquisition %d flags the end of frame %s after %d of its %d readouts: waiting for the rest",
                readout.scan_counter, key, len(held.steps), expected,
            )
        return []

    def expected_readouts(self, key: tuple[int, ...]) -> int | None:
        """Readouts of the complete frame ``key`` (None when the header does not say): the e1
        limits' count; in 3D times the e2 limits' count when e1 numbers each partition's readouts."""
        if self.readouts_per_frame is None:
            return None
        held = self._steps.get(key)
        partitions = self.partitions_per_frame or 1
        if self.volumetric and held is not None and partitions > 1 and held.per_partition:
            return self.readouts_per_frame * partitions
        return self.readouts_per_frame

    def close(self) -> list[CompletedFrame]:
        """Complete every frame still open (end of stream), in arrival order.

        With known readouts per frame, a fragment whose frame key was already completed and that
        holds fewer than ``LAST_FLAG_MIN_SHARE`` of a frame's readouts repeats earlier counters:
        it is dropped with a warning, not gridded as a frame of its own.
        """
        completed = []
        for key in list(self.frames):
            count = len(self.frames[key])
            expected = self.expected_readouts(key)
            if expected is not None and key in self._completed and count < LAST_FLAG_MIN_SHARE * expected:
                self.frames.pop(key)
                self._steps.pop(key, None)
                self.duplicates += count
                logger.warning(
                    "%d readout(s) repeat the counters of the completed frame %s: dropped as duplicates", count, key
                )
                continue
            completed.append(self._complete(key))
        return completed

    def _complete(self, key: tuple[int, ...]) -> CompletedFrame:
        expected = self.expected_readouts(key)
        readouts = self.frames.pop(key)
        self.buffered_samples -= sum(r.num_coils * r.num_samples for r in readouts)
        self._steps.pop(key, None)
        self._completed.add(key)
        if expected is not None and len(readouts) < expected:
            limits = "kspace_encoding_step_1" if expected == self.readouts_per_frame else "kspace_encoding_step_1 x _2"
            logger.warning(
                "frame %s is gridded from %d of the %d readouts the header's %s limits announce",
                key, len(readouts), expected, limits,
            )
        cal_key = calibration_key_of_frame(key)
        return CompletedFrame(key, readouts, self.calibration_for(cal_key), cal_key, bool(self.volumetric))

    def hold_assembled(self, samples: int) -> None:
        """Count ``samples`` of a completed frame that waits to be gridded among the buffered
        ones (they still take memory); ``release_assembled`` once it is gridded."""
        self.buffered_samples += samples

    def release_assembled(self, samples: int) -> None:
        """A completed frame counted by ``hold_assembled`` was gridded."""
        self.buffered_samples -= samples

    def mark_volumetric(self) -> None:
        """Grid in 3D from now on: open frames are re-keyed without their partition (readouts
        that came before the first with a kz component, e.g. an in-plane first spoke)."""
        if self.volumetric:
            return
        self.volumetric = True
        frames, self.frames = self.frames, {}
        self._steps = {}
        for readouts in frames.values():
            for readout in readouts:
                key = self.frame_key_of(readout)
                self.frames.setdefault(key, []).append(readout)
                step = (int(readout.idx.get("kspace_encode_step_1", 0)), int(readout.idx.get("kspace_encode_step_2", 0)))
                self._steps.setdefault(key, _FrameSteps()).add(step, readout)

    def frame_key_of(self, readout: Readout) -> tuple[int, ...]:
        """The frame key of an imaging readout: its counters, without the partition in 3D."""
        key = readout.frame_key()
        if not self.volumetric:
            return key
        return tuple(0 if name == "kspace_encode_step_2" else value for name, value in zip(FRAME_KEY_FIELDS, key))

    def calibration_for(self, cal_key: tuple[int, ...]) -> list[Readout]:
        """Calibration lines of a calibration key, in arrival order; in 3D those of every
        kspace_encode_step_2 with the key's other counters."""
        if not self.volumetric:
            return list(self.calibration.get(cal_key, []))
        position = CALIBRATION_KEY_FIELDS.index("kspace_encode_step_2")
        lines = [
            readout
            for key, readouts in self.calibration.items()
            if key[:position] + key[position + 1 :] == cal_key[:position] + cal_key[position + 1 :]
            for readout in readouts
        ]
        return sorted(lines, key=lambda readout: readout.scan_counter)

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
