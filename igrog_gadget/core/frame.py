"""What a variant grids: the samples of one frame, positions resolved, plus its calibration inputs."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from igrog_gadget.config import GriddingConfig
from igrog_gadget.errors import InputDataError
from igrog_gadget.numerics.calibration import CalibrationBlock
from igrog_gadget.numerics.coils import CoilTransform
from igrog_gadget.numerics.geometry import SampleGeometry, add_neighbour_sources, build_geometry

if TYPE_CHECKING:
    from igrog_gadget.core.report import FieldCorrectionReport, FrameReport


#: k (grid units) of the padding samples of readouts shorter than the frame's longest.
PADDING_POSITION = 1.0e5

#: Largest sample magnitude a frame may hold: calibration and training square and sum samples in
#: float32 (largest 3.4e38), so magnitudes beyond ~1e18 overflow; 1e15 leaves room for the sums.
MAX_SAMPLE_MAGNITUDE = 1.0e15
#: Smallest largest-sample magnitude: below it squares underflow float32 (smallest normal 1.2e-38)
#: and the pair normalisation's guard dominates (data scaled by 1e-30 gridded to garbage).
MIN_SAMPLE_MAGNITUDE = 1.0e-20


@dataclass(frozen=True, eq=False)
class FrameTrajectory:
    """Where a frame's samples lie on its grid, and when: all a gridding plan depends on besides
    the model, without the samples. Hashable (by value): equal trajectories share plans."""

    traj: np.ndarray
    """Shape (readouts, samples, dims), float32: (kx, ky) in grid units, k = 0 at index n//2; a
    3D frame (dims = 3) has (kx, ky, kz)."""
    matrix: tuple[int, ...]
    """(nx, ny) of the output grid; (nx, ny, nz) for a 3D frame."""
    lengths: np.ndarray | None = None
    """Shape (readouts,), int64: samples of each readout when the readouts differ in length
    (None: all ``samples``). A shorter readout's row is padded at ``PADDING_POSITION``, outside
    every grid and every calibration band (with zero data)."""
    sample_times_us: np.ndarray | None = None
    """Shape (readouts, samples), float32: time of each sample after the readout's first sample, microseconds."""

    @property
    def dims(self) -> int:
        """2 for a 2D frame, 3 for a 3D one (trajectory columns)."""
        return int(self.traj.shape[-1])

    def fingerprint(self, num_coils: int) -> str:
        """Hash of the trajectory, grid and a coil count (the model's, e.g. virtual coils): what
        kernels depend on in every variant."""
        digest = hashlib.sha1()
        digest.update(np.ascontiguousarray(self.traj, dtype=np.float32).tobytes())
        digest.update(repr((tuple(self.matrix), int(num_coils), self.traj.shape)).encode())
        return digest.hexdigest()

    @functools.cached_property
    def _identity(self) -> bytes:
        """Every value of the trajectory, hashed (equality and ``hash``)."""
        digest = hashlib.sha1(self.fingerprint(0).encode())
        for array in (self.lengths, self.sample_times_us):
            digest.update(b"-" if array is None else np.ascontiguousarray(array).tobytes())
        return digest.digest()

    def __hash__(self) -> int:
        return hash(self._identity)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FrameTrajectory) and self._identity == other._identity


@dataclass
class FrameInputs:
    """One frame (slice/contrast/repetition/...) ready for gridding: its samples on their
    ``FrameTrajectory``, plus its calibration inputs."""

    samples: np.ndarray
    """Shape (coils, readouts, samples), complex64 (zero at a shorter readout's padding)."""
    trajectory: FrameTrajectory
    calibration_lines: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    """Cartesian calibration readouts: ``(data (coils, samples), positions (samples, dims) grid units)``."""
    images: dict[str, np.ndarray] = field(default_factory=dict)
    """Image-domain inputs by series name (e.g. "b0map": ([nz,] ny, nx) Hz; "coil_images": (coils, [nz,] ny, nx))."""
    calibration_key: tuple = ()
    """Identifies the calibration this frame shares with others (trained models are reused per key)."""
    frame_key: tuple = ()
    """The frame's counters (``igrog_gadget.scan.FRAME_KEY_FIELDS``)."""
    noise_covariance: np.ndarray | None = None
    """Shape (coils, coils), complex128: the noise covariance of one sample in the frame's coils
    (virtual coils once compressed), from the noise scans scaled to the readouts' dwell time,
    when present."""
    coil_transform: "CoilTransform | None" = None
    """Set when the frame was compressed to virtual coils: maps physical-coil inputs (e.g. coil
    images of a file) to the frame's coils."""

    @property
    def traj(self) -> np.ndarray:
        """``trajectory.traj``: (readouts, samples, dims), grid units."""
        return self.trajectory.traj

    @property
    def matrix(self) -> tuple[int, ...]:
        """``trajectory.matrix``: (nx, ny[, nz])."""
        return self.trajectory.matrix

    @property
    def lengths(self) -> np.ndarray | None:
        """``trajectory.lengths``."""
        return self.trajectory.lengths

    @property
    def sample_times_us(self) -> np.ndarray | None:
        """``trajectory.sample_times_us``."""
        return self.trajectory.sample_times_us

    @property
    def num_coils(self) -> int:
        return int(self.samples.shape[0])

    @property
    def dims(self) -> int:
        """2 for a 2D frame, 3 for a 3D one (trajectory columns)."""
        return self.trajectory.dims

    def flat_samples(self) -> np.ndarray:
        """Shape (coils, readouts * samples)."""
        return self.samples.reshape(self.samples.shape[0], -1)

    def flat_coords(self) -> np.ndarray:
        """Shape (readouts * samples, dims)."""
        return self.traj.reshape(-1, self.traj.shape[-1])


@dataclass
class GriddedKSpace:
    """Result of gridding one frame."""

    kspace: np.ndarray
    """Shape (coils, ny, nx) (3D: (coils, nz, ny, nx)), complex64: mean of the samples moved onto
    each point; zero where none landed."""
    hits: np.ndarray
    """Shape (ny, nx) (3D: (nz, ny, nx)), int32: samples averaged into each point."""
    mean_time_us: np.ndarray | None = None
    """Shape (ny, nx) (3D: (nz, ny, nx)), float32: mean sample time of the samples on each point (if times were given)."""
    field_correction: "FieldCorrectionReport | None" = None
    """fieldcorr: the B0 map and how the field was removed (None for the other variants)."""
    noise_gain: np.ndarray | None = None
    """Shape like ``hits``, float32: the mean noise gain ``||K||_F^2 / coils`` of the kernels that
    made each point (1: a kernel that copies one sample; 0 where nothing landed), None when unknown."""
    report: "FrameReport | None" = None
    """How the frame was gridded (set by ``FrameGridder.grid``)."""
    calibration: CalibrationBlock | None = None
    """The frame's own calibration block in the output's coils (None: the variant has none)."""


def check_frame_values(frame: "FrameInputs") -> None:
    """Refuse a frame whose samples cannot be calibrated or gridded: all zero (or all-zero
    calibration lines), or of magnitudes that overflow or underflow float32 arithmetic (checked
    before any calibration or training).

    Raises:
        InputDataError: naming the problem and the largest magnitude.
    """
    sampled = float(np.max(np.abs(frame.samples))) if frame.samples.size else 0.0
    lines = [float(np.max(np.abs(data))) for data, _ in frame.calibration_lines if np.size(data)]
    peak = max([sampled, *lines])
    if peak == 0.0:
        also = f" and its {len(frame.calibration_lines)} calibration lines" if frame.calibration_lines else ""
        raise InputDataError(f"the data are all zero: every sample of the frame{also} is 0; nothing to calibrate or grid")
    if lines and max(lines) == 0.0:
        raise InputDataError(
            f"the {len(lines)} calibration lines (ACQ_IS_PARALLEL_CALIBRATION) are all zero; "
            "nothing to calibrate from (drop them to self-calibrate)"
        )
    if not peak <= MAX_SAMPLE_MAGNITUDE:
        raise InputDataError(
            f"sample magnitudes of {peak:.0e} overflow float32 arithmetic (calibration squares and sums "
            f"samples; at most {MAX_SAMPLE_MAGNITUDE:.0e} is supported): the data are mis-scaled"
        )
    if peak < MIN_SAMPLE_MAGNITUDE:
        raise InputDataError(
            f"sample magnitudes of {peak:.0e} underflow float32 arithmetic (the largest sample must be at least "
            f"{MIN_SAMPLE_MAGNITUDE:.0e}): the data are mis-scaled"
        )


def sample_geometry(frame: FrameInputs, gridding: GriddingConfig) -> SampleGeometry:
    """Targets, sources and offsets of every sample of ``frame``: ``gridding.num_sources``
    consecutive readout samples, and in 3D ``gridding.neighbour_sources`` samples of other
    readouts near the target grid point (``add_neighbour_sources``)."""
    geometry = build_geometry(frame.traj, frame.matrix, gridding.num_sources, frame.lengths)
    if frame.dims == 3:  # kept: across a 3D readout's line the coils alone cannot shift in two directions
        geometry = add_neighbour_sources(geometry, frame.traj, gridding.neighbour_sources, gridding.neighbour_radius)
    return geometry
