"""Typed containers for scan data, converted once from ISMRMRD at the I/O boundary.

Nothing here imports ``ismrmrd``: the I/O layer (``igrog_gadget.io``) fills these
containers and turns results back into ISMRMRD objects.

Axis order used across the package (2D and 3D differ only in the z axis: see
``igrog_gadget.numerics.dimensions``):
- k-space samples of one readout: ``(coils, samples)``
- trajectories: ``(samples, 2)`` as ``(kx, ky)``, or ``(samples, 3)`` as ``(kx, ky, kz)`` for a
  scan gridded in 3D, in grid units (cycles/FOV), k = 0 at grid index ``N // 2``
- header matrices and fields of view: ``(nx, ny, nz)`` (nz = 1 for a single 2D plane)
- Cartesian grids: ``(coils, ny, nx)``, or ``(coils, nz, ny, nx)`` for a 3D frame
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from igrog_gadget.errors import InputDataError

if TYPE_CHECKING:
    from igrog_gadget.numerics.calibration import CalibrationBlock
    from igrog_gadget.core.report import FrameReport

# ISMRMRD acquisition flag bit numbers (1-based, as in the ISMRMRD standard).
FLAG_FIRST_IN_SLICE = 7
FLAG_LAST_IN_SLICE = 8
FLAG_LAST_IN_REPETITION = 14
FLAG_LAST_IN_MEASUREMENT = 25
FLAG_IS_NOISE_MEASUREMENT = 19
FLAG_IS_PARALLEL_CALIBRATION = 20
FLAG_IS_PARALLEL_CALIBRATION_AND_IMAGING = 21
FLAG_IS_NAVIGATION_DATA = 23
FLAG_IS_PHASECORR_DATA = 24
FLAG_IS_DUMMYSCAN_DATA = 27
FLAG_IS_RTFEEDBACK_DATA = 28
FLAG_IS_HPFEEDBACK_DATA = 26
FLAG_IS_SURFACECOILCORRECTIONSCAN_DATA = 29
FLAG_IS_PHASE_STABILIZATION_REFERENCE = 30
FLAG_IS_PHASE_STABILIZATION = 31

#: Slice geometry fields of an acquisition header that an image made from its frame copies.
GEOMETRY_FIELDS = ("position", "read_dir", "phase_dir", "slice_dir", "patient_table_position")

#: Encoding counters kept on every readout (names as in ISMRMRD's EncodingCounters).
IDX_FIELDS = (
    "kspace_encode_step_1",
    "kspace_encode_step_2",
    "average",
    "slice",
    "contrast",
    "phase",
    "repetition",
    "set",
    "segment",
)

#: Counters that separate one gridded frame from another.
FRAME_KEY_FIELDS = ("slice", "contrast", "phase", "set", "repetition", "average", "kspace_encode_step_2")
#: Counters that select the calibration a frame uses (repetitions, averages... share it).
CALIBRATION_KEY_FIELDS = ("slice", "contrast", "kspace_encode_step_2")


def calibration_key_of_frame(frame_key: tuple[int, ...]) -> tuple[int, ...]:
    """Calibration key from a frame key (see ``FRAME_KEY_FIELDS``)."""
    values = dict(zip(FRAME_KEY_FIELDS, frame_key))
    return tuple(values[name] for name in CALIBRATION_KEY_FIELDS)


#: ``FRAME_KEY_FIELDS`` without the partition (encode step 2): the counters an image header and
#: the output header's encodingLimits carry.
FRAME_COUNTER_FIELDS = tuple(name for name in FRAME_KEY_FIELDS if name != "kspace_encode_step_2")


def flag_mask(bit: int) -> int:
    """Bit mask of a 1-based ISMRMRD flag number."""
    return 1 << (bit - 1)


def has_flag(flags: int, bit: int) -> bool:
    """True when the 1-based ISMRMRD flag ``bit`` is set in ``flags``."""
    return bool(int(flags) & flag_mask(bit))


@dataclass
class Readout:
    """One ISMRMRD acquisition as plain arrays."""

    data: np.ndarray
    """Shape (coils, samples), complex64: the raw samples."""
    traj: np.ndarray | None
    """Shape (samples, dims), float32, in the file's units (not yet resolved); None if absent."""
    flags: int
    """ISMRMRD acquisition flags (bit field)."""
    idx: dict[str, int]
    """Encoding counters, keys from ``IDX_FIELDS``."""
    center_sample: int = 0
    """Index of the sample at k = 0 along the readout (Cartesian convention)."""
    sample_time_us: float = 0.0
    """Dwell time between samples, microseconds."""
    discard_pre: int = 0
    discard_post: int = 0
    encoding_space_ref: int = 0
    """Index of the header ``<encoding>`` this readout belongs to (0: the imaging encoding)."""
    scan_counter: int = 0
    """Position of the acquisition in the input stream (0-based), for error messages."""
    source_header: Any = None
    """The original ISMRMRD AcquisitionHeader; only the I/O layer reads it."""

    @property
    def num_coils(self) -> int:
        return int(self.data.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.data.shape[1])

    def without_discards(self) -> "Readout":
        """The readout with its ``discard_pre`` / ``discard_post`` samples removed (data, traj,
        centre sample); itself when there are none.

        Raises:
            InputDataError: the discards leave no sample.
        """
        pre, post = max(int(self.discard_pre), 0), max(int(self.discard_post), 0)
        if pre == 0 and post == 0:
            return self
        stop = self.num_samples - post
        if stop <= pre:
            raise InputDataError(
                f"acquisition {self.scan_counter}: discard_pre {pre} + discard_post {post} leave none of its "
                f"{self.num_samples} samples"
            )
        traj = self.traj if self.traj is None or self.traj.size == 0 else self.traj[pre:stop]
        return dataclasses.replace(
            self,
            data=self.data[:, pre:stop],
            traj=traj,
            center_sample=int(self.center_sample) - pre,
            discard_pre=0,
            discard_post=0,
        )

    def frame_key(self) -> tuple[int, ...]:
        """Counters that identify the frame this readout belongs to."""
        return tuple(int(self.idx.get(name, 0)) for name in FRAME_KEY_FIELDS)

    # --- routing predicates -------------------------------------------------
    def is_noise(self) -> bool:
        return has_flag(self.flags, FLAG_IS_NOISE_MEASUREMENT)

    def is_calibration(self) -> bool:
        return has_flag(self.flags, FLAG_IS_PARALLEL_CALIBRATION) or has_flag(
            self.flags, FLAG_IS_PARALLEL_CALIBRATION_AND_IMAGING
        )

    def is_imaging(self) -> bool:
        """Imaging readout to grid (calibration-only and auxiliary readouts are not)."""
        if has_flag(self.flags, FLAG_IS_PARALLEL_CALIBRATION_AND_IMAGING):
            return True
        auxiliary = (
            FLAG_IS_NOISE_MEASUREMENT,
            FLAG_IS_PARALLEL_CALIBRATION,
            FLAG_IS_NAVIGATION_DATA,
            FLAG_IS_PHASECORR_DATA,
            FLAG_IS_DUMMYSCAN_DATA,
            FLAG_IS_RTFEEDBACK_DATA,
            FLAG_IS_HPFEEDBACK_DATA,
            FLAG_IS_SURFACECOILCORRECTIONSCAN_DATA,
            FLAG_IS_PHASE_STABILIZATION_REFERENCE,
            FLAG_IS_PHASE_STABILIZATION,
        )
        return not any(has_flag(self.flags, bit) for bit in auxiliary)

    def is_last_in_slice(self) -> bool:
        return has_flag(self.flags, FLAG_LAST_IN_SLICE)


@dataclass(frozen=True)
class EncodingGeometry:
    """Geometry of one ``<encoding>`` of the XML header (what placing its readouts needs)."""

    matrix: tuple[int, int, int]
    """(nx, ny, nz) of its encodedSpace."""
    fov_mm: tuple[float, float, float]
    """Field of view of its encodedSpace, mm (0 where the header leaves it out)."""
    trajectory: str
    """Its trajectory type, lower case (cartesian, radial, spiral, ...)."""
    step1_center: int | None = None
    """encodingLimits.kspace_encoding_step_1.center when it lies inside its limits and above 0."""


@dataclass
class ScanHeader:
    """What the gridding needs from the ISMRMRD XML header (first encoding)."""

    encoded_matrix: tuple[int, int, int]
    """(nx, ny, nz) of encodedSpace: the gridding matrix."""
    encoded_fov_mm: tuple[float, float, float]
    recon_matrix: tuple[int, int, int]
    recon_fov_mm: tuple[float, float, float]
    trajectory: str
    """ISMRMRD trajectory type of the input: cartesian, radial, spiral, goldenangle, other, ..."""
    num_coils: int | None
    """receiverChannels from acquisitionSystemInformation, when present."""
    xml: str = ""
    """The original XML header text."""
    user_parameters: dict[str, Any] = field(default_factory=dict)
    step1_limits: tuple[int, int] | None = None
    """(minimum, maximum) of encodingLimits.kspace_encoding_step_1, when the header states them:
    for non-Cartesian data the readouts (spokes, interleaves) of one frame."""
    step2_limits: tuple[int, int] | None = None
    """(minimum, maximum) of encodingLimits.kspace_encoding_step_2, when the header states them:
    the partitions of a stack (a 3D stack-of-spirals whose e1 numbers the interleaves of each
    partition has e1 x e2 readouts per frame)."""
    encodings: tuple[EncodingGeometry, ...] = ()
    """Every ``<encoding>`` of the header, in order; 0 is the imaging encoding gridded here,
    others are e.g. a separate calibration scan (``encoding_space_ref`` of its readouts)."""

    def encoding(self, index: int) -> EncodingGeometry:
        """Geometry of encoding ``index`` (the first when the header lists none)."""
        if not self.encodings and index == 0:
            return EncodingGeometry(self.encoded_matrix, self.encoded_fov_mm, self.trajectory)
        if not 0 <= index < len(self.encodings):
            raise IndexError(f"encoding {index} of a header with {len(self.encodings)} encoding(s)")
        return self.encodings[index]


@dataclass
class ImageItem:
    """An image-domain input travelling in the dataset (e.g. b0map, coil_images)."""

    series: str
    """Name of the image series (HDF5 group name or header series name)."""
    data: np.ndarray
    """Shape (channels, nz, ny, nx) as stored by ISMRMRD images."""
    meta: dict[str, Any] = field(default_factory=dict)
    source: Any = None
    """The original ISMRMRD Image; only the I/O layer reads it."""

    def channels(self) -> np.ndarray:
        """The image as channels of one matrix: (channels, ny, nx) for a 2D image (nz = 1), or
        (channels, nz, ny, nx) for a volume (nz > 1): what an image input series is stacked from."""
        return image_channels(self.data)


def image_channels(data: np.ndarray) -> np.ndarray:
    """``data`` (channels, nz, ny, nx) as (channels, ny, nx) when nz = 1 (or fewer axes: all
    leading axes are channels), as (channels, nz, ny, nx) when nz > 1 (a 3D image)."""
    data = np.asarray(data)
    if data.ndim >= 4 and data.shape[-3] > 1:
        return data.reshape(-1, *data.shape[-3:])
    return data.reshape(-1, *data.shape[-2:])


@dataclass
class GriddedFrame:
    """Gridded Cartesian k-space of one frame, 2D or 3D."""

    kspace: np.ndarray
    """Shape (coils, ny, nx), or (coils, nz, ny, nx) for a 3D frame, complex64; k = 0 at index
    n // 2 of every axis; zero where no sample landed."""
    hits: np.ndarray
    """Shape (ny, nx) (3D: (nz, ny, nx)), int32: number of samples averaged into each grid point."""
    frame_key: tuple[int, ...]
    """Counters of the frame (see ``FRAME_KEY_FIELDS``)."""
    template: Readout
    """A readout of the frame whose header fields (geometry, counters) the output copies."""
    mean_time_us: np.ndarray | None = None
    """Shape of ``hits``, float32: mean acquisition time of the samples on each grid point (fieldcorr)."""
    report: "FrameReport | None" = None
    """How it was gridded (variant, path, training, coils, estimates, timings)."""
    calibration: "CalibrationBlock | None" = None
    """The frame's calibration block on the output grid, in the output's coils (None: the variant
    has none, e.g. fieldcorr), for the calibration pass-through and the coil maps."""

    @property
    def calibration_key(self) -> tuple[int, ...]:
        """The frame's calibration key (``CALIBRATION_KEY_FIELDS``)."""
        return calibration_key_of_frame(self.frame_key)
