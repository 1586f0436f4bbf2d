"""Synthesising training pairs at off-grid positions from a calibration block."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from igrog_gadget.errors import CalibrationError
from igrog_gadget.numerics.calibration import CalibrationBlock


@dataclass
class TrainingPairs:
    """Inputs and targets of kernel training, data scaled by ``scale``."""

    offsets: np.ndarray
    """Shape (pairs, sources, dims), float32: source positions minus target grid point (dims 2 or 3)."""
    sources: np.ndarray
    """Shape (pairs, coils * sources), complex64, coil-major (index ``c * S + j``)."""
    targets: np.ndarray
    """Shape (pairs, coils), complex64: the value at the target grid point."""
    scale: float
    """The data were divided by this (RMS of the calibration block)."""
    extra: dict[str, np.ndarray] | None = None
    """Variant-specific inputs per pair (e.g. "times": (pairs,) for fieldcorr)."""


def rms_scale(values: np.ndarray) -> float:
    """Root-mean-square magnitude of ``values``, 1.0 when they are all zero: the scale pairs are
    divided by (data of any units train the same kernels)."""
    return float(np.sqrt(np.mean(np.abs(values) ** 2))) or 1.0


def complex_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """``a + i b`` with ``a``, ``b`` standard normal (complex128; variance 2 per value)."""
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def normalized(sources: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pair (row) scaled to unit mean source power. Kernels are linear: scaling a pair
    leaves its optimal kernel unchanged but keeps the high-energy centre of k-space from
    dominating the loss."""
    norms = np.sqrt(np.mean(np.abs(sources) ** 2, axis=1, keepdims=True)) + 1e-12
    return sources / norms, targets / norms


def packed_pairs(
    offsets: np.ndarray,
    sources: np.ndarray,
    targets: np.ndarray,
    scale: float,
    normalize: bool,
    extra: dict[str, np.ndarray] | None = None,
) -> TrainingPairs:
    """Training pairs from scaled sources (pairs, coils*sources) and targets (pairs, coils):
    normalised per pair when ``normalize`` (see :func:`normalized`), complex64, contiguous."""
    if normalize:
        sources, targets = normalized(sources, targets)
    return TrainingPairs(
        offsets=offsets,
        sources=np.ascontiguousarray(sources, dtype=np.complex64),
        targets=np.ascontiguousarray(targets, dtype=np.complex64),
        scale=scale,
        extra=extra,
    )


def target_range(block: CalibrationBlock, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest admissible target (kx, ky[, kz]) inside the block, ``margin`` from its edge.

    Raises:
        CalibrationError: the block is too small for that margin.
    """
    low = np.array([np.ceil(o + margin) for o in block.origin], dtype=np.int64)
    high = np.array([np.floor(o + n - 1 - margin) for o, n in zip(block.origin, block.extent)], dtype=np.int64)
    if np.any(high < low):
        raise CalibrationError(
            f"calibration block of {' x '.join(str(n) for n in block.shape)} is too small: targets must stay {margin:.1f} grid units "
            "from its edge (edge_margin + largest source offset); lower calibration.edge_margin or "
            "gridding.num_sources, or provide a larger ACS"
        )
    return low, high


def synthesize_pairs(
    block: CalibrationBlock,
    interpolate: Callable[[np.ndarray], np.ndarray],
    offset_pool: np.ndarray,
    num_pairs: int,
    edge_margin: float,
    jitter: float,
    rng: np.random.Generator,
    normalize: bool = True,
    source_noise_std: float = 0.0,
) -> TrainingPairs:
    """Pairs at random grid targets inside the block, offsets drawn from the trajectory's own.

    Args:
        block: the calibration block (targets are its on-grid values).
        interpolate: off-grid values of the block, positions (m, dims) → (coils, m).
        offset_pool: shape (n, sources, dims): the offsets the trajectory produces (dims = the block's).
        num_pairs: pairs to make.
        edge_margin: grid units kept between targets (plus the source reach) and the block edge.
        jitter: std of Gaussian noise added to drawn offsets (grid units).
        normalize: scale each pair to unit mean source power.
        source_noise_std: complex Gaussian noise (data units) added to the sources, so that the
            kernels learn the noise of real samples (a ridge penalty on their noise gain).
    """
    if offset_pool.shape[0] == 0:
        raise CalibrationError("no imaging samples inside the grid: nothing to train kernels for")
    coils = block.kspace.shape[0]
    num_sources = offset_pool.shape[1]
    offsets = offset_pool[rng.integers(0, offset_pool.shape[0], num_pairs)].astype(np.float32)
    if jitter > 0:
        offsets = offsets + rng.normal(0.0, jitter, offsets.shape).astype(np.float32)
    reach = float(np.max(np.abs(offsets)))
    low, high = target_range(block, edge_margin + reach)
    dims = block.dims
    if offset_pool.shape[2] != dims:
        raise CalibrationError(
            f"the trajectory's offsets have {offset_pool.shape[2]} coordinates but the calibration block is {dims}D "
            f"({' x '.join(str(n) for n in block.shape)})"
        )
    targets_k = rng.integers(low, high + 1, size=(num_pairs, dims))
    positions = (targets_k[:, None, :] + offsets).reshape(-1, dims)
    scale = rms_scale(block.kspace)
    sources = interpolate(positions).reshape(coils, num_pairs, num_sources)
    sources = sources.transpose(1, 0, 2).reshape(num_pairs, coils * num_sources) / scale
    if source_noise_std > 0:
        noise = rng.standard_normal((*sources.shape, 2)).astype(np.float32) @ np.array([1, 1j], np.complex64)
        sources = sources + (source_noise_std / scale / np.sqrt(2)) * noise
    index = tuple(targets_k[:, axis] - block.origin[axis] for axis in reversed(range(dims)))  # ([iz,] iy, ix)
    targets = block.kspace[(slice(None),) + index].T / scale
    return packed_pairs(offsets, sources, targets, scale, normalize)


def source_whitening(sources: np.ndarray, regularization: float = 1e-2) -> torch.Tensor:
    """Inverse Cholesky factor of the source covariance: shape (m, m) complex64 tensor for sources (pairs, m).

    ``W = L^-1`` with ``L L^H = E[s s^H] + regularization * mean eigenvalue * I``, so the
    whitened sources ``W s`` have (almost) identity covariance. Computed with torch: numpy's
    BLAS can be very slow for this product on a loaded two-core machine.
    """
    s = torch.from_numpy(np.ascontiguousarray(sources, dtype=np.complex64)).to(torch.complex128)
    covariance = (s.T @ s.conj()) / max(s.shape[0], 1)  # E[s s^H], s as column vectors
    power = float(torch.diagonal(covariance).real.mean())
    if not (math.isfinite(power) and power > 0):
        problem = "all zero" if power == 0 else f"of power {power:g} (not finite)"
        raise CalibrationError(f"the training sources are {problem}: the calibration data cannot train kernels")
    load = regularization * power
    eye = torch.eye(covariance.shape[0], dtype=covariance.dtype)
    try:
        factor = torch.linalg.cholesky(covariance + load * eye)
    except RuntimeError as error:  # torch.linalg.LinAlgError
        raise CalibrationError(f"the training sources' covariance cannot be factored: {error}") from None
    return torch.linalg.inv(factor).to(torch.complex64)


def whitening_or_identity(whitening: torch.Tensor | None, size: int) -> torch.Tensor:
    """The (size, size) complex64 whitening matrix a kernel model is built with (identity if None)."""
    if whitening is None:
        return torch.eye(size, dtype=torch.complex64)
    if tuple(whitening.shape) != (size, size):
        raise ValueError(f"whitening must have shape ({size}, {size}), got {tuple(whitening.shape)}")
    return whitening.to(torch.complex64)
