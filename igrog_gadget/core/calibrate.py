"""Choosing the calibration block of a frame.

- ``acs``: the Cartesian calibration lines alone.
- ``self``: the densely sampled centre of the non-Cartesian data (CG-NUFFT solve); a smaller,
  low-resolution block when only a small centre is densely sampled (undersampled radial).
- ``joint``: one CG-NUFFT solve over the ACS lines *and* the non-Cartesian samples of the
  centre. Its block has the ACS's full coverage but far less noise, which matters: the training
  pairs take their targets and (interpolated) sources from the same block, so its noise would
  correlate sources with targets and bias the kernels towards the nearest sample.
- ``auto`` (default): ``joint`` when there are ACS lines, else ``self``.

Before a joint solve the lines are checked against the non-Cartesian data: when fitting them
with the samples makes the fit's noise estimate ``acs_noise_ratio_max`` times worse than the
samples alone give (lines misplaced: another encoding's numbering, FOV or oversampling; or
another coil set), they are not used and the frame calibrates as if it had none. That second
solve fits the samples in their ``ACS_CHECK_COILS`` strongest coils only. A 3D frame saves it: there the lines' own misfit in the joint fit is compared with the fit's
noise estimate.

3D frames (positions (kx, ky, kz)) calibrate the same ways from a 3D block: ACS lines along kx
at several (ky, kz), a 3D CG-NUFFT of the densely sampled centre, or both jointly. Lines that
all lie in one kz plane (a 2D ACS) cannot calibrate a 3D grid and are refused.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from igrog_gadget.core.frame import FrameInputs
from igrog_gadget.config import CalibrationConfig
from igrog_gadget.errors import CalibrationError
from igrog_gadget.numerics.coils import noise_std_of
from igrog_gadget.numerics.nufft import nufft_forward
from igrog_gadget.numerics.calibration import (
    CalibrationBlock,
    CentreFit,
    SparseCentreError,
    acs_from_cartesian_lines,
    calibration_radius,
    centre_coverage,
    fit_centre,
    largest_calibration_size,
    self_calibrate,
)

logger = logging.getLogger(__name__)

#: Coils the 2D check of the calibration lines fits the samples alone in (its second solve): the
#: strongest, against the joint fit's noise estimate in the same coils. Misplaced lines misfit
#: wherever there is signal; four coils cost a fraction of a 10- or 16-coil solve.
ACS_CHECK_COILS = 4
#: Largest noise power, as a share of the calibration block's mean power, that the noise scans may
#: give a block with no noise estimate of its own: a block of the central k-space points holds far
#: more signal than noise (the simulated SNR 50 scans: 0.003); noise scans past it are scaled or
#: sampled unlike the data and are not used (the closed form's ridge then stays at its floor).
NOISE_SCAN_MAX_POWER_SHARE = 0.5


def calibration_block(frame: FrameInputs, config: CalibrationConfig, grid_oversampling: float = 1.0) -> CalibrationBlock:
    """The k-space calibration block of ``frame`` per ``config.source`` (auto | acs | self | joint).

    ``grid_oversampling`` (gridding.grid_oversampling) is only named in messages: it spaces the
    calibration lines that many grid points apart. A block with no noise estimate of its own (the
    ACS lines alone) takes the noise scans' level when the frame has them (``noise_covariance``).

    Raises:
        CalibrationError: no ACS when ``acs`` is asked for, or neither ACS nor a dense centre
            (when the frame has calibration lines that could not be used, the message says why).
    """
    block = _source_block(frame, config, grid_oversampling)
    if block.noise_std is None and frame.noise_covariance is not None:
        noise_std = noise_std_of(frame.noise_covariance)
        power = float(np.mean(np.abs(block.kspace) ** 2))
        if noise_std**2 > NOISE_SCAN_MAX_POWER_SHARE * power:
            logger.warning(
                "the noise scans' level %.3g is not used for the %s block: its noise power would be %.2g of the "
                "block's mean power (more than %g; noise scans scaled or sampled unlike the data?)",
                noise_std, block.source, noise_std**2 / max(power, 1e-30), NOISE_SCAN_MAX_POWER_SHARE,
            )
        else:
            logger.info("the %s block has no noise estimate of its own: the noise scans' level %.3g is used", block.source, noise_std)
            block = dataclasses.replace(block, noise_std=noise_std)
    return block


def _source_block(frame: FrameInputs, config: CalibrationConfig, grid_oversampling: float) -> CalibrationBlock:
    """``calibration_block`` as ``config.source`` makes it (the ACS lines' block has no noise estimate)."""
    lines = frame.calibration_lines
    if frame.dims == 3 and lines:
        check_volume_lines(lines)
    if config.source in ("acs", "joint") and not lines:
        raise CalibrationError(
            f"calibration.source = {config.source} but the data hold no calibration lines "
            "(ACQ_IS_PARALLEL_CALIBRATION); use source = auto or self"
        )
    if config.source == "acs":
        try:
            return acs_from_cartesian_lines(lines, min_size=config.acs_min_size)
        except CalibrationError as error:
            raise CalibrationError(
                f"the {len(lines)} calibration lines cannot be used: {error}{_spacing_hint(grid_oversampling)}"
            ) from None
    unused = None
    if config.source in ("auto", "joint") and lines:
        block, unused = _joint_block(frame, config)
        if block is not None:
            return block
    size = config.selfcal_size
    if frame.dims == 2:
        size = plane_block_side(frame.flat_coords(), frame.matrix, size, config)
    try:
        return self_calibrate(
            frame.flat_samples(),
            frame.flat_coords(),
            size=size,
            grid=config.solve_grid(size),
            iterations=config.selfcal_iterations,
            min_coverage=config.selfcal_min_coverage,
            min_size=config.selfcal_min_size,
        )
    except SparseCentreError as error:
        if unused is None:
            raise
        if "form no block" in unused:
            unused += _spacing_hint(grid_oversampling)
        raise CalibrationError(
            f"no calibration data: the {len(lines)} calibration lines cannot be used ({unused}), and {error.reason}"
        ) from None


def strongest_coils(samples: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` coils of ``samples`` (coils, n) with the most energy, in coil order: (k,) int64."""
    energy = np.sum(np.abs(samples) ** 2, axis=1)
    return np.sort(np.argsort(-energy, kind="stable")[:count])


def check_volume_lines(lines: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Refuse calibration lines of a 3D frame that all lie in one kz plane (a 2D ACS).

    Raises:
        CalibrationError: naming the plane and the line count.
    """
    planes = np.unique(np.concatenate([np.round(positions[:, 2], 3) for _, positions in lines]))
    if planes.size < 2:
        raise CalibrationError(
            f"the {len(lines)} calibration lines all lie in the kz = {planes[0]:g} plane (one kspace_encode_step_2): "
            "a 2D ACS cannot calibrate a 3D grid; acquire a 3D ACS block (lines along kx at several ky and kz) or "
            "leave the calibration lines out to self-calibrate from the densely sampled centre"
        )


def plane_block_side(coords: np.ndarray, matrix: tuple[int, ...], size: int, config: CalibrationConfig) -> int:
    """Side of a 2D joint or self-calibration block: the largest even side from
    ``calibration.max_block_fraction`` of the smallest matrix side (at most
    ``calibration.max_block_side``) down to ``size`` whose centre disc the samples (coords (n, 2),
    grid units) fill to ``selfcal_min_coverage``; ``size`` when none does or the fraction allows
    no larger block."""
    top = min(int(config.max_block_fraction * min(matrix[:2])), config.max_block_side) // 2 * 2
    if top <= size:
        return size
    side, _ = largest_calibration_size(coords, top, size, config.selfcal_min_coverage)
    return side if side > 0 else size


def _volume_joint_size(
    coords: np.ndarray, matrix: tuple[int, ...], size: int, acs: CalibrationBlock | None, config: CalibrationConfig
) -> int:
    """Side of a 3D joint block: the largest even side from ``size`` (at most the smallest matrix
    side) down to the ACS's whose ball the samples and lines fill to ``selfcal_min_coverage``; 0
    when none does and there is an ACS block to fall back on (without one, ``size`` stays and the
    coverage check reports the problem)."""
    top = min(size, min(matrix) - min(matrix) % 2)
    bottom = min(acs.shape) if acs is not None else config.selfcal_min_size
    side, _ = largest_calibration_size(coords, top, min(bottom, top), config.selfcal_min_coverage)
    if side == 0 and acs is None:
        return top
    return side


def _line_residual_std(fit: CentreFit, lines: list[tuple[np.ndarray, np.ndarray]], grid: int) -> float:
    """RMS (per coil and sample) misfit of the calibration lines' samples within the fit's band:
    lines that agree with the non-Cartesian samples are fitted to the noise level, misplaced ones
    (the joint fit follows the far more numerous samples) far worse."""
    data = np.concatenate([d for d, _ in lines], axis=1)
    coords = np.concatenate([p for _, p in lines], axis=0)
    band = np.max(np.abs(coords), axis=1) < grid / 2 - 0.5
    if not band.any():
        return 0.0
    residual = data[:, band] - nufft_forward(fit.image, coords[band])
    return float(np.sqrt(np.mean(np.abs(residual) ** 2)))


def _spacing_hint(grid_oversampling: float) -> str:
    if grid_oversampling <= 1.0:
        return ""
    return (
        f"; gridding.grid_oversampling = {grid_oversampling:g} places the lines {grid_oversampling:g} grid points "
        "apart, so they sample no contiguous block: grid at grid_oversampling = 1 or self-calibrate"
    )


def _joint_block(frame: FrameInputs, config: CalibrationConfig) -> tuple[CalibrationBlock | None, str | None]:
    """The joint (ACS + non-Cartesian) block, the ACS block alone when the centre around the ACS is
    too sparse for the joint solve, or (None, why the lines are not used) when they disagree
    with the data or form no block and cover too little of the centre."""
    lines = frame.calibration_lines
    acs_problem = ""
    try:
        acs: CalibrationBlock | None = acs_from_cartesian_lines(lines, min_size=config.acs_min_size)
    except CalibrationError as error:  # e.g. lines on every other row of an oversampled grid
        logger.info("the ACS lines alone give no block (%s); joint solve only", error)
        acs = None
        acs_problem = str(error)
    dims = frame.dims
    size = max(config.selfcal_size, min(acs.shape) if acs is not None else 0)
    samples = np.concatenate([frame.flat_samples()] + [data for data, _ in lines], axis=1)
    coords = np.concatenate([frame.flat_coords()] + [pos for _, pos in lines], axis=0)
    if dims == 3:  # the largest block the centre fills (3D fits are costly: none that cannot be used)
        size = _volume_joint_size(coords, frame.matrix, size, acs, config)
        if size == 0 and acs is not None:  # (0 only when there is an ACS block to fall back on)
            logger.info("joint calibration not possible (the centre around the ACS is sparse); using the ACS block %s", acs.shape)
            return acs, None
    else:
        size = plane_block_side(coords, frame.matrix, size, config)
    grid = config.solve_grid(size)
    joint = fit_centre(samples, coords, grid, config.selfcal_iterations)
    if config.acs_noise_ratio_max > 0:
        if dims == 3:  # one solve less: the lines' own residual in the joint fit against the fit's
            joint_std = joint.noise_std
            alone_std = _line_residual_std(joint, lines, grid)
            ratio = alone_std / max(joint_std, 1e-30)
        else:  # the samples alone, in their strongest coils (the lines' misfit shows there most)
            frame_samples = frame.flat_samples()
            coils = strongest_coils(frame_samples, ACS_CHECK_COILS)
            joint_std = float(np.sqrt(np.mean(joint.coil_noise_std[coils] ** 2)))
            alone_std = fit_centre(frame_samples[coils], frame.flat_coords(), grid, config.selfcal_iterations).noise_std
            ratio = joint_std / max(alone_std, 1e-30)
        if ratio > config.acs_noise_ratio_max:
            logger.warning(
                "the %d calibration lines disagree with the non-Cartesian samples: fitted with them the "
                "calibration's noise estimate is %.3g, without them %.3g (%.1fx, limit %.3gx); the lines are "
                "not used (check their encoding_space_ref, kspace_encode_step_1 numbering, FOV and readout "
                "oversampling against the header)",
                len(lines), joint_std, alone_std, ratio, config.acs_noise_ratio_max,
            )
            return None, (
                f"they disagree with the non-Cartesian samples: fitted with them the noise estimate is {ratio:.1f}x "
                f"that of the samples alone, limit calibration.acs_noise_ratio_max = {config.acs_noise_ratio_max:g}; "
                "check their encoding_space_ref, kspace_encode_step_1 numbering, FOV and readout oversampling"
            )
        logger.info("calibration lines agree with the samples (noise estimate %.2fx of the samples' alone)", ratio)
    coverage = centre_coverage(coords, calibration_radius(size, dims))
    if coverage < config.selfcal_min_coverage:
        if acs is None:
            logger.warning(
                "the calibration lines form no block and, with the samples, cover only %.0f%% of the centre "
                "(need %.0f%%); calibrating without them", 100 * coverage, 100 * config.selfcal_min_coverage,
            )
            return None, (
                f"they form no block: {acs_problem}; with the samples they cover only {coverage:.0%} of the centre, "
                f"need {config.selfcal_min_coverage:.0%} for a joint solve"
            )
        logger.info("joint calibration not possible (centre coverage %.0f%%); using the ACS block %s", 100 * coverage, acs.shape)
        return acs, None
    logger.info(
        "calibration solve: %d samples, %dx%d block, centre coverage %.0f%%, noise std %.3g",
        joint.num_samples, size, size, 100 * coverage, joint.noise_std,
    )
    return joint.block(size, "joint"), None
