"""One pipeline for replay and streaming: items in, gridded frames and pass-through items out.

``GriddingPipeline.process(item)`` takes one ISMRMRD item in typed form (``Readout``,
``ImageItem`` or anything else) and returns, in order, what leaves the pipeline:
``GriddedFrame`` objects for completed frames and the untouched items it does not handle
(noise scans, navigators, images, waveforms...). ``close()`` completes the open frames.

With ``background_training`` (streaming), a completed frame whose model is still training
does not stop the pipeline: it waits in order (with everything that comes after it) while
later items are ingested -- so the next calibration key's training is submitted as soon as its
data are in -- and leaves with the first ``process`` call after its model is ready (``close``
waits for all). Without it (replay) every frame leaves with the item that completed it. The
outputs and their order are the same either way; only when they leave differs.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from igrog_gadget.core.frame import FrameInputs
from igrog_gadget.planning.gridder import FrameGridder
from igrog_gadget.config import IgrogConfig
from igrog_gadget.errors import InputDataError
from igrog_gadget.numerics.coils import NoiseCovariance
from igrog_gadget.limits import ResourceLimits
from igrog_gadget.scan import (
    FLAG_IS_PARALLEL_CALIBRATION,
    FLAG_IS_PARALLEL_CALIBRATION_AND_IMAGING,
    FRAME_KEY_FIELDS,
    GriddedFrame,
    ImageItem,
    Readout,
    ScanHeader,
    calibration_key_of_frame,
    flag_mask,
    has_flag,
)
from igrog_gadget.stream.buffer import CompletedFrame, ReadoutBuffer
from igrog_gadget.stream.frames import frame_inputs, is_volumetric

logger = logging.getLogger(__name__)

#: Image series the variants read as inputs (they are passed on too).
INPUT_IMAGE_SERIES = ("b0map", "coil_images", "sensitivity_maps", "reference_image")


class GriddingPipeline:
    """Routes items, buffers readouts per frame, grids completed frames with the variant."""

    def __init__(
        self,
        header: ScanHeader,
        config: IgrogConfig,
        source: str = "",
        gridder: FrameGridder | None = None,
        array_coils: int | None = None,
        resource_limits: ResourceLimits | None = None,
        background_training: bool = False,
    ) -> None:
        """``background_training``: trainings run on a worker thread while items keep coming
        (streaming); the outputs are the same as without (replay)."""
        self.header = header
        self.config = config
        self.source = f"{source}: " if source else ""
        self.gridder = gridder or FrameGridder(config, background_training=background_training)
        self.buffer = ReadoutBuffer(
            max_coils=header.num_coils,
            expected_coils=array_coils,
            readouts_per_frame=readouts_per_frame(header),
            partitions_per_frame=(header.step2_limits[1] - header.step2_limits[0] + 1) if header.step2_limits else None,
            max_buffered_samples=(resource_limits or ResourceLimits()).max_buffered_samples,
        )
        """``array_coils``: the receive array's coil count when known in advance (a file's
        ``array_coil_count``); a stream takes the first count it sees."""
        self._other_coils_seen: set[int] = set()
        self.noise = NoiseCovariance()
        """Coil noise covariance of the noise scans seen so far (prewhitening before compression)."""
        self.image_inputs: dict[str, list[ImageItem]] = {}
        self.defer_frames = background_training
        self._centre_warned = False
        """Whether a ``center_sample`` that contradicts the trajectory was reported."""
        self._waiting: deque[Any] = deque()
        """Outputs in order behind a frame whose model is still training (``_PendingFrame`` or items)."""

    def process(self, item: Any) -> list[Any]:
        """Outputs that leave the pipeline after ``item``, in order (see the module docstring)."""
        self._waiting.extend(self._route(item))
        return self._release(wait=False)

    def close(self) -> list[GriddedFrame]:
        """Grid every frame still buffered or waiting (end of stream); stop the training worker."""
        try:
            self._waiting.extend(self._pending(frame) for frame in self.buffer.close())
            return self._release(wait=True)
        finally:
            self.gridder.close()

    def completed_frames(self) -> list[Any]:
        """What is waiting behind frames still training, once they are gridded, without
        completing the frames still open (a stream cut short: its last frames are incomplete);
        stops the training worker."""
        try:
            return self._release(wait=True)
        finally:
            self.gridder.close()

    def holds_frames(self) -> bool:
        """Whether a completed frame waits for its model (``release_ready`` may then give outputs)."""
        return any(isinstance(waiting, _PendingFrame) for waiting in self._waiting)

    def release_ready(self) -> list[Any]:
        """Outputs whose frames' models have become ready since the last call (in order)."""
        return self._release(wait=False)

    def holds(self, item: Any) -> bool:
        """Whether ``item`` waits in line behind a frame (it leaves with a later call)."""
        return any(waiting is item for waiting in self._waiting)

    def _release(self, wait: bool) -> list[Any]:
        """Outputs from the front of the waiting line: items, and frames whose model is ready
        (every frame when ``wait`` or not deferring)."""
        outputs = []
        while self._waiting:
            head = self._waiting[0]
            if isinstance(head, _PendingFrame):
                if self.defer_frames and not wait and not self.gridder.training.is_trained(head.inputs.calibration_key):
                    break
                self.buffer.release_assembled(head.samples)
                outputs.append(self._grid(head))
            else:
                outputs.append(head)
            self._waiting.popleft()
        return outputs

    def _route(self, item: Any) -> list[Any]:
        """What ``item`` puts into the waiting line: itself, nothing, or the frames it completed."""
        if isinstance(item, Readout):
            if item.is_noise():
                self.noise.add(item.data, item.sample_time_us)
            if not (item.is_calibration() or item.is_imaging()):
                return [item]
            try:
                if not self.buffer.is_array_readout(item):
                    if item.num_coils not in self._other_coils_seen:
                        self._other_coils_seen.add(item.num_coils)
                        logger.warning(
                            "%sacquisition %d has %d coils, the receive array %d: acquisitions of %d coils "
                            "(e.g. a body-coil reference) are passed through, not gridded",
                            self.source, item.scan_counter, item.num_coils, self.buffer.expected_coils, item.num_coils,
                        )
                    return [item]
                readout = self._as_gridded(item.without_discards())
                if readout.is_imaging() and not self._centre_warned:
                    self._check_centre_sample(readout)
                if not readout.is_calibration() and readout.encoding_space_ref != 0:
                    raise InputDataError(
                        f"acquisition {readout.scan_counter} is imaging data of encoding {readout.encoding_space_ref} "
                        "(encoding_space_ref); igrog grids the first encoding of the header (encoding_space_ref = 0) "
                        "and uses the others only for calibration lines"
                    )
                if not self.buffer.volumetric and readout.is_imaging() and is_volumetric(self.header, self.config, readout):
                    self.buffer.mark_volumetric()
                completed = self.buffer.add(readout)
            except InputDataError as error:
                raise InputDataError(f"{self.source}{error}") from None
            if not completed and readout.is_imaging():
                self._train_early(readout)
            return [self._pending(frame) for frame in completed]
        if isinstance(item, ImageItem) and item.series in INPUT_IMAGE_SERIES:
            self.image_inputs.setdefault(item.series, []).append(item)
        return [item]

    def _check_centre_sample(self, readout: Readout) -> None:
        """Warn (once) when an imaging readout's ``center_sample`` contradicts its trajectory:
        beyond its samples (seen from OpenRecon once readout oversampling is removed upstream),
        or 0 where the trajectory passes k = 0 mid-readout. Gridding places samples by the
        trajectory, never by ``center_sample``: the data are gridded as they are."""
        if readout.traj is None or readout.traj.size == 0:
            return
        samples = readout.num_samples
        centre = int(np.argmin(np.sum(np.asarray(readout.traj, np.float32)[:, :2] ** 2, axis=1)))
        if readout.center_sample >= samples or (readout.center_sample == 0 and centre > max(2, samples // 8)):
            self._centre_warned = True
            logger.warning(
                "%sacquisition %d: center_sample = %d, but it has %d samples and its trajectory passes k = 0 at "
                "sample %d; the trajectory places the samples (center_sample is not used)",
                self.source, readout.scan_counter, readout.center_sample, samples, centre,
            )

    def _as_gridded(self, readout: Readout) -> Readout:
        """``ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING`` lines without a trajectory in a non-Cartesian
        scan are Cartesian ACS lines: calibration only (they are not part of the non-Cartesian
        frame and do not count among its readouts)."""
        if (
            self.header.trajectory != "cartesian"
            and has_flag(readout.flags, FLAG_IS_PARALLEL_CALIBRATION_AND_IMAGING)
            and (readout.traj is None or readout.traj.size == 0)
        ):
            flags = (int(readout.flags) & ~flag_mask(FLAG_IS_PARALLEL_CALIBRATION_AND_IMAGING)) | flag_mask(
                FLAG_IS_PARALLEL_CALIBRATION
            )
            return dataclasses.replace(readout, flags=flags)
        return readout

    def _train_early(self, readout: Readout) -> None:
        """Submit the training of the readout's calibration key when its frame has just reached
        ``training.early_readouts`` readouts, the key has no training yet and the variant can
        train from the calibration data and those readouts (``trains_before_frame_ends``).

        Decided from the data alone (the same whether training runs in the background or not);
        an early frame that cannot be used (e.g. no trajectory yet) is left to the whole-frame
        training, which reports the problem."""
        early = self.config.training.early_readouts
        frame_key = self.buffer.frame_key_of(readout)
        key = calibration_key_of_frame(frame_key)
        readouts = self.buffer.frames.get(frame_key)
        if early <= 0 or readouts is None or len(readouts) != early or self.gridder.training.has_training(key):
            return
        partial = CompletedFrame(frame_key, list(readouts), self.buffer.calibration_for(key), key, bool(self.buffer.volumetric))
        try:
            inputs = self._frame_inputs(partial)
            if not self.gridder.spec.datamodule.trains_before_frame_ends(inputs, self.config):
                return
            self.gridder.training.submit(inputs, partial=True)
        except InputDataError as error:
            logger.info("%sno early training for frame %s (%s): it trains when complete", self.source, frame_key, error)


    def images_for(self, completed: CompletedFrame) -> dict[str, np.ndarray]:
        """Image inputs for a frame: per series, (channels, ny, nx) (a 3D series: (channels, nz, ny, nx)).

        The series' images of the frame's slice are chosen (slice from the ISMRMRD image
        header, else the meta attribute ``slice``; untagged images fit every slice; when none
        fits, all of them), then among those the ones of the frame's contrast likewise; the
        chosen images are stacked along channels in arrival order (e.g. one image per coil).
        """
        slice_index, contrast = completed.calibration_key[0], completed.calibration_key[1]
        arrays: dict[str, np.ndarray] = {}
        for series, items in self.image_inputs.items():
            chosen = [i for i in items if _image_counter(i, "slice") in (None, slice_index)] or items
            chosen = [i for i in chosen if _image_counter(i, "contrast") in (None, contrast)] or chosen
            parts = [i.channels() for i in chosen]
            shapes = sorted({part.shape[1:] for part in parts})
            if len(shapes) > 1:
                raise InputDataError(
                    f"{self.source}image series {series!r}: images of different matrices {shapes} "
                    f"for slice {slice_index}, contrast {contrast}"
                )
            arrays[series] = np.concatenate(parts)
        return arrays

    def _frame_inputs(self, completed: CompletedFrame) -> FrameInputs:
        """``FrameInputs`` of buffered readouts, with the image inputs and noise covariance seen so far."""
        inputs = frame_inputs(completed, self.header, self.config, self.images_for(completed), self.source)
        inputs.noise_covariance = self.noise.covariance(inputs.num_coils, completed.dwell_us)
        return inputs

    def _pending(self, completed: CompletedFrame) -> _PendingFrame:
        """A completed frame's inputs, as they are now (images and noise seen so far); its key's
        training is submitted now when it has none. Its samples count as buffered until gridded."""
        inputs = self._frame_inputs(completed)
        if not self.gridder.training.has_training(inputs.calibration_key):
            try:
                self.gridder.training.submit(inputs)
            except InputDataError as error:
                raise InputDataError(f"{self.source}frame {dict(zip(FRAME_KEY_FIELDS, completed.frame_key))}: {error}") from None
        samples = int(inputs.samples.size)
        self.buffer.hold_assembled(samples)
        return _PendingFrame(inputs, completed.readouts[0], samples)

    def _grid(self, pending: _PendingFrame) -> GriddedFrame:
        inputs = pending.inputs
        try:
            result = self.gridder.grid(inputs)
        except InputDataError as error:
            raise InputDataError(f"{self.source}frame {dict(zip(FRAME_KEY_FIELDS, inputs.frame_key))}: {error}") from None
        return GriddedFrame(
            kspace=result.kspace,
            hits=result.hits,
            frame_key=inputs.frame_key,
            template=pending.template,
            mean_time_us=result.mean_time_us,
            report=result.report,
            calibration=result.calibration,
        )


@dataclass
class _PendingFrame:
    """A completed frame waiting for gridding."""

    inputs: FrameInputs
    template: Readout
    """Its first readout (the output's header template)."""
    samples: int
    """Complex samples it holds (counted among the buffered ones until gridded)."""


def readouts_per_frame(header: ScanHeader) -> int | None:
    """Readouts of one complete non-Cartesian frame, from encodingLimits.kspace_encoding_step_1
    (None for Cartesian input or when the header does not state them)."""
    if header.trajectory == "cartesian" or header.step1_limits is None:
        return None
    low, high = header.step1_limits
    return high - low + 1 if high > low else None


def _image_counter(item: ImageItem, name: str) -> int | None:
    """An image's ``slice`` / ``contrast``: from its ISMRMRD header, else its meta attributes."""
    value = getattr(item.source, name, None)
    if value is None:
        value = item.meta.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None
