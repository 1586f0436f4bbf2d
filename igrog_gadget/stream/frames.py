"""Turning buffered readouts into ``FrameInputs``: positions in grid units, arrays stacked.

2D frames (a plane: trajectories (kx, ky), grid (nx, ny)) and 3D frames (``is_volumetric``:
trajectories (kx, ky, kz), grid (nx, ny, nz)) are stacked the same way."""

from __future__ import annotations

import logging

import numpy as np

from igrog_gadget.core.frame import PADDING_POSITION, FrameInputs, FrameTrajectory
from igrog_gadget.config import IgrogConfig
from igrog_gadget.errors import ConfigError, InputDataError
from igrog_gadget.io.trajectory import (
    BULK_QUANTILE,
    GRID_ABSOLUTE_TOLERANCE,
    GRID_RELATIVE_TOLERANCE,
    cartesian_positions,
    fov_scale,
    resolve_trajectory_units,
)
from igrog_gadget.numerics.dimensions import DimensionProfile, dimensions
from igrog_gadget.scan import Readout, ScanHeader
from igrog_gadget.stream.buffer import CompletedFrame

logger = logging.getLogger(__name__)


def grid_matrix(header: ScanHeader, config: IgrogConfig, dims: int = 2) -> tuple[int, ...]:
    """(nx, ny) of the output grid (``dims`` = 3: (nx, ny, nz)): encodedSpace matrix x grid_oversampling."""
    factor = config.gridding.grid_oversampling
    return tuple(int(round(n * factor)) for n in dimensions(dims).matrix(header.encoded_matrix))


def is_volumetric(header: ScanHeader, config: IgrogConfig, readout: Readout) -> bool:
    """Whether ``readout`` makes the scan one gridded onto a 3D grid: ``gridding.dimensions`` =
    3d, or auto with encodedSpace z > 1, a non-Cartesian header and a 3-column trajectory with
    some kz != 0 in ``readout`` (the pipeline asks for each imaging readout until one is).

    Raises:
        ConfigError: dimensions = 3d with encodedSpace z = 1.
    """
    mode = config.gridding.dimensions
    nz = int(header.encoded_matrix[2])
    if mode == "2d":
        return False
    if mode == "3d":
        if nz <= 1:
            raise ConfigError(f"gridding.dimensions = 3d, but the header's encodedSpace matrixSize.z = {nz}: a 3D grid needs z > 1")
        return True
    traj = readout.traj
    if nz <= 1 or header.trajectory == "cartesian" or traj is None or traj.ndim != 2 or traj.shape[1] < 3:
        return False
    return bool(np.any(np.abs(traj[:, 2]) > 1e-6))


def _trajectory(readout: Readout, source: str, profile: DimensionProfile, nz: int) -> np.ndarray:
    """The positions (samples, dims) = (kx, ky[, kz]) of a non-Cartesian readout of a scan gridded
    in ``profile``'s dimensions, file units; ``nz``: the header's encodedSpace z."""
    traj = readout.traj
    where = f"{source}acquisition {readout.scan_counter}"
    columns = f"{profile.dims} (" + ", ".join("k" + axis for axis in profile.axes) + ")"
    gridded = f"the scan is gridded in {profile.name} (encodedSpace z = {nz})"
    if traj is None or traj.size == 0:
        raise InputDataError(
            f"{where} has no trajectory (trajectory_dimensions = 0) but {gridded} from a non-Cartesian encoding; "
            f"every imaging acquisition needs acq.traj with {columns}"
        )
    if traj.ndim != 2 or traj.shape[0] != readout.num_samples:
        raise InputDataError(f"{where}: traj has shape {traj.shape}, expected ({readout.num_samples}, {profile.dims})")
    if traj.shape[1] < profile.dims:
        raise InputDataError(
            f"{where}: trajectory_dimensions = {traj.shape[1]}, but {gridded}: every readout needs {columns}"
        )
    # Kept: only a plane can receive a position column it does not grid. With a 2D matrix (z = 1)
    # a third column is not a position (e.g. Gadgetron's density weights); with z > 1 a non-zero
    # kz is a 3D trajectory the planes would silently flatten.
    if profile.dims == 2 and nz > 1 and traj.shape[1] > 2 and np.any(np.abs(traj[:, 2]) > 1e-6):
        raise InputDataError(
            f"{where}: 3D trajectory (kz != 0) in a scan gridded as 2D planes "
            "(its first imaging readout had no kz, or gridding.dimensions = 2d): set gridding.dimensions = 3d to "
            "grid it onto a 3D grid; stack-of-2D data must use kspace_encode_step_2 for the partition"
        )
    return traj[:, : profile.dims]


def check_axis_ranges(positions: np.ndarray, matrix: tuple[int, ...], scan_counters: np.ndarray, source: str = "") -> None:
    """Refuse 3D positions (readouts, samples, 3) in grid units reaching beyond an axis's grid range
    (``n/2`` with the unit detection's slack), naming the axis, the acquisition and the matrix."""
    for axis, n in enumerate(matrix):
        reach = np.abs(positions[..., axis])
        limit = n / 2 * (1 + GRID_RELATIVE_TOLERANCE) + GRID_ABSOLUTE_TOLERANCE
        if reach.size and float(reach.max()) > limit:
            row = int(np.argmax(reach.max(axis=1)))
            name = "xyz"[axis]
            raise InputDataError(
                f"{source}acquisition {int(scan_counters[row])}: k{name} reaches {float(reach.max()):.4g} grid units, "
                f"beyond the {name} range +-{n / 2:g} of encodedSpace matrixSize.{name} = {n}; the trajectory's k{name} "
                "is out of range (wrong units or a wrong header matrix)"
            )


def unit_factor(traj: np.ndarray, header: ScanHeader, config: IgrogConfig, source: str = "") -> float:
    """Factor from stored trajectory units (traj (readouts, samples, 2), or 3 columns in 3D) to
    grid units of the encoded matrix, detected or configured."""
    dims = int(traj.shape[-1])
    magnitude = np.abs(traj).reshape(-1)
    bulk = float(np.quantile(magnitude, BULK_QUANTILE)) if magnitude.size else 0.0
    try:
        return resolve_trajectory_units(
            float(np.max(magnitude, initial=0.0)),
            max(header.encoded_matrix[:dims]),
            config.gridding.trajectory_units,
            bulk_abs=bulk,
        )
    except InputDataError as error:
        raise InputDataError(f"{source}{error}") from None


def frame_inputs(
    completed: CompletedFrame,
    header: ScanHeader,
    config: IgrogConfig,
    images: dict[str, np.ndarray] | None = None,
    source: str = "",
) -> FrameInputs:
    """Stack a completed frame's readouts into arrays with positions in grid units.

    Raises:
        InputDataError: missing or 3D trajectories, units out of range (messages name the
            acquisition). Readouts of different lengths are padded (``FrameInputs.lengths``).
    """
    readouts = completed.readouts
    profile = dimensions(3 if completed.volumetric else 2)
    dims = profile.dims
    encoded = np.array(profile.matrix(header.encoded_matrix), dtype=np.float32)
    matrix = grid_matrix(header, config, dims)
    oversampling = config.gridding.grid_oversampling
    cartesian_input = header.trajectory == "cartesian" and all(r.traj is None or r.traj.size == 0 for r in readouts)
    factor = 1.0
    if cartesian_input:
        imaging = header.encoding(0)
        positions = [cartesian_positions(r, imaging, dims=dims) for r in readouts]
    else:
        nz = int(header.encoded_matrix[2])
        positions = [_trajectory(r, source, profile, nz).astype(np.float32) for r in readouts]
        factor = unit_factor(np.concatenate(positions)[None], header, config, source)
        if factor != 1.0:  # normalized units: scale each axis by its own matrix size
            positions = [p * encoded for p in positions]
    lengths = np.array([r.num_samples for r in readouts], dtype=np.int64)
    longest = int(lengths.max())
    traj = np.full((len(readouts), longest, dims), PADDING_POSITION, dtype=np.float32)
    samples = np.zeros((readouts[0].num_coils, len(readouts), longest), dtype=np.complex64)  # (coils, readouts, samples)
    for row, (readout, position) in enumerate(zip(readouts, positions)):
        traj[row, : readout.num_samples] = position * oversampling
        samples[:, row, : readout.num_samples] = readout.data
    # Kept: a 3D grid is anisotropic (nz != nx), so the unit detection (which reads the largest
    # axis) cannot see a kz beyond nz / 2; a plane's samples beyond the grid are dropped (counted).
    if dims == 3:
        padded = np.where(traj == PADDING_POSITION, 0.0, traj)
        counters = np.array([r.scan_counter for r in readouts])
        check_axis_ranges(padded / oversampling, tuple(int(n) for n in encoded), counters, source)
    if lengths.min() != longest:
        logger.info(
            "%sframe %s: readouts of %d to %d samples (each gridded over its own length)",
            source, completed.frame_key, int(lengths.min()), longest,
        )
    dwell = np.array([r.sample_time_us for r in readouts], dtype=np.float32)
    sample_times = dwell[:, None] * np.arange(longest, dtype=np.float32)[None, :]
    calibration_lines = _placed_calibration_lines(completed, header, factor, source, oversampling, dims)
    trajectory = FrameTrajectory(
        traj=traj, matrix=matrix, lengths=None if lengths.min() == longest else lengths, sample_times_us=sample_times
    )
    return FrameInputs(
        samples=samples,
        trajectory=trajectory,
        calibration_lines=calibration_lines,
        images=dict(images or {}),
        calibration_key=completed.calibration_key,
        frame_key=completed.frame_key,
    )


def _placed_calibration_lines(
    completed: CompletedFrame, header: ScanHeader, factor: float, source: str, oversampling: float, dims: int = 2
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(data (coils, samples), positions (samples, dims) grid units)`` of the frame's calibration
    lines; lines that cannot be placed (outside their encoding, an unknown encoding) are left out
    with a warning: bad calibration lines never stop or worsen the gridding."""
    lines, unplaced = [], []
    for readout in completed.calibration:
        try:
            lines.append((readout.data, _calibration_positions(readout, header, factor, source, dims) * oversampling))
        except InputDataError as error:
            unplaced.append(str(error))
    if unplaced:
        logger.warning(
            "%s%d of the %d calibration lines of frame %s cannot be placed and are not used (first: %s)",
            source, len(unplaced), len(completed.calibration), completed.frame_key, unplaced[0],
        )
    return lines


def _calibration_positions(readout: Readout, header: ScanHeader, factor: float, source: str, dims: int = 2) -> np.ndarray:
    """Positions (samples, dims) in grid units of the imaging encoding of a calibration readout: its
    Cartesian layout in the encoding it references (``encoding_space_ref``: centre line, matrix,
    FOV, readout oversampling), or its traj (in the imaging data's units for encoding 0, else
    scaled from its own encoding's FOV); an all-zero traj counts as none."""
    ref = readout.encoding_space_ref
    if not 0 <= ref < max(len(header.encodings), 1):
        raise InputDataError(
            f"{source}acquisition {readout.scan_counter}: encoding_space_ref = {ref}, but the header has "
            f"{len(header.encodings)} encoding(s)"
        )
    encoding, imaging = header.encoding(ref), header.encoding(0)
    if readout.traj is None or readout.traj.size == 0 or not np.any(readout.traj[:, :2]):
        # no trajectory, or one left all zero (a writer reusing an imaging acquisition's buffer,
        # as mrpro's test-data writer does): the Cartesian layout of its encoding
        return cartesian_positions(readout, encoding, imaging, dims).astype(np.float32)
    traj = _trajectory(readout, source, dimensions(dims), int(header.encoded_matrix[2])).astype(np.float32)
    if factor != 1.0:
        traj = traj * np.array(encoding.matrix[:dims], dtype=np.float32)
    return (traj * fov_scale(encoding, imaging, dims)).astype(np.float32)
