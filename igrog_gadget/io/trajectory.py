"""Trajectory units of the input and k-space positions of Cartesian readouts.

Grid units: cycles per FOV, so a matrix of N points spans k in [-N/2, N/2), with k = 0 at
grid index ``N // 2``. ISMRMRD files store trajectories either in grid units or normalized
to [-0.5, 0.5].
"""

from __future__ import annotations

import logging
import math

import numpy as np

from igrog_gadget.config import TRAJECTORY_UNITS
from igrog_gadget.errors import ConfigError, InputDataError
from igrog_gadget.numerics.dimensions import dimensions
from igrog_gadget.scan import EncodingGeometry, Readout

logger = logging.getLogger(__name__)

#: Accepted values of the ``trajectory_units`` setting.
TRAJECTORY_UNIT_MODES = TRAJECTORY_UNITS  # gridding.trajectory_units

#: Slack above 0.5 still taken as a normalized trajectory.
NORMALIZED_TOLERANCE = 1e-3
#: Largest |k| of a trajectory whose bulk is normalized (real gradient waveforms overshoot 0.5 a
#: little; the samples beyond +-0.5 fall outside the grid and are dropped and counted).
NORMALIZED_OVERSHOOT_MAX = 0.6
#: Share of |k| values below the "bulk" statistic the automatic unit decision uses.
BULK_QUANTILE = 0.99
#: Relative slack above matrix/2 still taken as grid units (over-reaching spiral/radial ends).
GRID_RELATIVE_TOLERANCE = 0.05
#: Absolute slack added to the grid range.
GRID_ABSOLUTE_TOLERANCE = 1e-3
#: Relative tolerance of the readout oversampling factor.
OVERSAMPLING_TOLERANCE = 0.02


def resolve_trajectory_units(
    traj_max_abs: float, matrix: int, mode: str = "auto", bulk_abs: float | None = None
) -> float:
    """Factor converting stored trajectory values to grid units (multiply the trajectory by it).

    Args:
        traj_max_abs: maximum |k| over the trajectory components used for gridding, file units.
        matrix: grid size N along that axis (grid units span [-N/2, N/2)).
        mode: ``"grid"`` (factor 1), ``"normalized"`` (factor N, stored range [-0.5, 0.5]) or
            ``"auto"``: normalized when max|k| <= 0.5 + 1e-3; grid when
            0.5 + 1e-3 < max|k| <= N/2 * 1.05 + 1e-3; otherwise an error.
        bulk_abs: the ``BULK_QUANTILE`` quantile of |k| (auto only): when it is within +-0.5 (and
            N >= 8) the trajectory is normalized even if a few samples overshoot to
            ``NORMALIZED_OVERSHOOT_MAX`` (those samples fall outside the grid); a larger
            overshoot with a normalized bulk is inconsistent and an error.

    Returns:
        The scale factor (1.0 or float(N)).

    Raises:
        ConfigError: unknown ``mode``.
        InputDataError: ``traj_max_abs`` not finite, or (auto) outside both accepted ranges;
            the message states the maximum, the matrix and the ranges.
    """
    matrix = int(matrix)
    if matrix < 1:
        raise ValueError(f"matrix must be >= 1, got {matrix}")
    if mode not in TRAJECTORY_UNIT_MODES:
        raise ConfigError(f"trajectory_units must be one of {', '.join(TRAJECTORY_UNIT_MODES)}; got {mode!r}")
    value = float(traj_max_abs)
    if not math.isfinite(value) or value < 0:
        raise InputDataError(f"trajectory maximum |k| must be finite and >= 0, got {traj_max_abs!r}")

    normalized_max = 0.5 + NORMALIZED_TOLERANCE
    grid_max = matrix / 2 * (1 + GRID_RELATIVE_TOLERANCE) + GRID_ABSOLUTE_TOLERANCE
    if mode == "grid":
        if value > grid_max:
            raise InputDataError(
                f"trajectory_units = grid but max |k| = {value:.6g} exceeds the grid range {grid_max:.6g} of "
                f"matrix {matrix}; the trajectory is in other units or the header matrix is wrong"
            )
        return 1.0
    if mode == "normalized":
        if value > normalized_max:
            raise InputDataError(
                f"trajectory_units = normalized but max |k| = {value:.6g} exceeds 0.5; "
                "the trajectory looks like grid units (set trajectory_units = grid or auto)"
            )
        return float(matrix)
    if bulk_abs is not None and matrix >= 8 and float(bulk_abs) <= normalized_max < value:
        if value <= NORMALIZED_OVERSHOOT_MAX:
            logger.warning(
                "trajectory units: normalized (%g%% of |k| <= %.4g); the samples beyond |k| = 0.5 (up to %.4g) "
                "lie outside the grid and are dropped", 100 * BULK_QUANTILE, float(bulk_abs), value,
            )
            return float(matrix)
        raise InputDataError(
            f"inconsistent trajectory units: {100 * BULK_QUANTILE:g}% of |k| are <= {float(bulk_abs):.4g} "
            f"(normalized) but max |k| = {value:.6g} (beyond {NORMALIZED_OVERSHOOT_MAX:g}); set trajectory_units "
            "explicitly or check the trajectory"
        )
    if value <= normalized_max:
        logger.info("trajectory units: normalized (max |k| = %.6g <= 0.5), scaling by %d", value, matrix)
        return float(matrix)
    if value <= grid_max:
        logger.info("trajectory units: grid (max |k| = %.6g, matrix %d)", value, matrix)
        return 1.0
    raise InputDataError(
        f"cannot tell the trajectory units: max |k| = {value:.6g} with matrix {matrix}; accepted ranges are "
        f"normalized (max |k| <= {normalized_max:g}) or grid units ({normalized_max:g} < max |k| <= "
        f"{grid_max:g} = matrix/2 * {1 + GRID_RELATIVE_TOLERANCE:g}); set trajectory_units explicitly"
    )


def fov_scale(encoding: EncodingGeometry, grid: EncodingGeometry, dims: int = 2) -> np.ndarray:
    """Factor (x, y[, z]) from the k units of ``encoding`` (cycles per its FOV) to those of ``grid``:
    grid FOV / encoding FOV per axis, 1 where either FOV is not stated."""
    scale = np.ones(dims, dtype=np.float64)
    for axis in range(dims):
        if encoding.fov_mm[axis] > 0 and grid.fov_mm[axis] > 0:
            scale[axis] = grid.fov_mm[axis] / encoding.fov_mm[axis]
    return scale


def cartesian_positions(
    readout: Readout, encoding: EncodingGeometry, grid: EncodingGeometry | None = None, dims: int = 2
) -> np.ndarray:
    """k-space positions of a Cartesian readout of ``encoding`` that carries no trajectory, in the
    grid units of ``grid`` (default: ``encoding`` itself).

    Readout oversampling ``os = round(n_samples / nx)`` (``nx`` of ``encoding``) when
    ``n_samples >= nx`` (else 1); the ratio must be within 2 % of that integer. In ``encoding``'s
    units ``kx = (i - center_sample) / os`` and ``ky = kspace_encode_step_1 - c``, where ``c`` is
    the encoding's ``kspace_encoding_step_1.center`` when the encoding is Cartesian and states one
    (a non-Cartesian encoding's step 1 counts interleaves, so there ``c = ny // 2``). Both are then
    scaled by ``grid``'s FOV over ``encoding``'s (a calibration scan of another FOV or with its
    readout oversampling in encodedSpace). With ``dims`` = 3 (a 3D grid) a third column
    ``kz = kspace_encode_step_2 - nz // 2`` follows.

    Args:
        readout: data (coils, samples); uses center_sample and idx["kspace_encode_step_1"].
        encoding: geometry of the encoding the readout references (``encoding_space_ref``).
        grid: geometry whose grid units the positions are given in.

    Returns:
        Shape (samples, dims), float32, columns (kx, ky[, kz]).

    Raises:
        InputDataError: non-integer oversampling or a phase-encoding index outside 0..ny-1
            (0..nz-1 for step 2 in 3D; message names the acquisition and the field).
    """
    nx, ny = int(encoding.matrix[0]), int(encoding.matrix[1])
    if nx < 1 or ny < 1:
        raise ValueError(f"nx and ny must be >= 1, got nx={nx}, ny={ny}")
    n = readout.num_samples
    where = f"acquisition {readout.scan_counter}"
    if n >= nx:
        ratio = n / nx
        oversampling = max(1, round(ratio))
        if abs(ratio - oversampling) > OVERSAMPLING_TOLERANCE * oversampling:
            raise InputDataError(
                f"{where}: field 'number_of_samples' = {n} is not an integer multiple of the encoding's "
                f"nx = {nx} (ratio {ratio:.4g}); cannot place the Cartesian readout"
            )
    else:
        oversampling = 1
    profile = dimensions(dims)
    scale = fov_scale(encoding, grid or encoding, dims)
    positions = np.empty((n, dims), dtype=np.float32)
    positions[:, 0] = (np.arange(n, dtype=np.float64) - readout.center_sample) / oversampling * scale[0]
    for axis, counter in enumerate(profile.encode_counters, start=1):  # ky, then kz in 3D
        size, step = int(encoding.matrix[axis]), int(readout.idx.get(counter, 0))
        if not 0 <= step < size:
            raise InputDataError(
                f"{where}: field 'idx.{counter}' = {step} is outside its encoding's {_ENCODED[axis]} 0..{size - 1}"
            )
        positions[:, axis] = (step - _centre(encoding, axis)) * scale[axis]
    return positions


#: What the encoding numbers along y and z (for messages).
_ENCODED = {1: "lines", 2: "partitions"}


def _centre(encoding: EncodingGeometry, axis: int) -> int:
    """The encoding step at k = 0 along ``axis`` (1: y, 2: z): n // 2, or along y the encoding's
    ``kspace_encoding_step_1.center`` when the encoding is Cartesian and states one (a
    non-Cartesian encoding's step 1 counts interleaves)."""
    if axis == 1 and encoding.trajectory == "cartesian" and encoding.step1_center is not None:
        return int(encoding.step1_center)
    return int(encoding.matrix[axis]) // 2
