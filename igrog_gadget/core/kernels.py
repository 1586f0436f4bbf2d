"""Applying per-sample kernels and averaging the results on the grid."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch

from igrog_gadget.numerics.geometry import SampleGeometry


def gather_sources(samples: torch.Tensor, source_index: torch.Tensor) -> torch.Tensor:
    """Source values of each sample, coil-major.

    Args:
        samples: shape (coils, total_samples), complex64.
        source_index: shape (n, sources), int64.
    Returns:
        shape (n, coils * sources): ``out[i, c * S + j] = samples[c, source_index[i, j]]``.
    """
    coils = samples.shape[0]
    n, num_sources = source_index.shape
    gathered = samples[:, source_index.reshape(-1)].reshape(coils, n, num_sources)
    return gathered.permute(1, 0, 2).reshape(n, coils * num_sources)


def apply_kernels(kernels: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """Shifted values: (n, coils, coils*sources) x (n, coils*sources) → (n, coils).

    With autograd (training) a broadcast product and a sum, whose backward is far cheaper than
    ``bmm``'s for these small per-sample matrices; without it ``bmm`` (ten times faster forward).
    """
    if torch.is_grad_enabled() and (kernels.requires_grad or sources.requires_grad):
        return (kernels * sources.unsqueeze(1)).sum(-1)
    return torch.bmm(kernels, sources.unsqueeze(-1)).squeeze(-1)


def grid_shape(matrix: tuple[int, ...]) -> tuple[int, ...]:
    """Array shape of a grid ``(nx, ny[, nz])``: ``(ny, nx)`` or ``(nz, ny, nx)``."""
    return tuple(int(n) for n in reversed(matrix))


def average_on_grid(
    values: torch.Tensor, grid_index: torch.Tensor, matrix: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of the values landing on each grid point.

    Args:
        values: shape (n, coils), complex.
        grid_index: shape (n,), int64 flat index ``iy * nx + ix`` (3D ``(iz * ny + iy) * nx + ix``).
        matrix: (nx, ny) or (nx, ny, nz).
    Returns:
        ``(kspace (coils, [nz,] ny, nx) complex64, hits ([nz,] ny, nx) int32)``; zero where nothing landed.
    """
    sums = torch.zeros(math.prod(matrix), values.shape[1], dtype=values.dtype, device=values.device)
    sums.index_add_(0, grid_index, values)
    return sums_to_mean(sums, grid_index, matrix)


def sums_to_mean(
    sums: torch.Tensor, grid_index: torch.Tensor, matrix: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-point sums (points, coils) → ``(mean (coils, [nz,] ny, nx), hits ([nz,] ny, nx) int32)``."""
    shape = grid_shape(matrix)
    hits = torch.bincount(grid_index, minlength=math.prod(matrix))
    mean = sums / hits.clamp(min=1).unsqueeze(1).to(sums.real.dtype)
    return mean.T.reshape(sums.shape[1], *shape), hits.reshape(shape).to(torch.int32)


def mean_time_on_grid(times: np.ndarray, geometry: SampleGeometry) -> np.ndarray:
    """Mean sample time on each grid point: times (total_samples,) → ([nz,] ny, nx) float32."""
    values = torch.from_numpy(np.asarray(times, dtype=np.float64)[geometry.sample_index]).unsqueeze(1)
    mean, _ = average_on_grid(values, torch.from_numpy(geometry.grid_index), geometry.matrix)
    return mean[0].to(torch.float32).numpy()


def apply_transposed_kernels(kernels_t: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """``apply_kernels`` with kernels stored transposed: (n, coils*sources, coils) x (n, coils*sources)
    → (n, coils). A (1 x m) @ (m x coils) product per sample: on the CPU several times faster than
    (coils x m) @ (m x 1) for coil counts above 8, so cached kernels are kept in this layout."""
    return torch.bmm(sources.unsqueeze(1), kernels_t).squeeze(1)


#: Kernels whose noise gains are summed at once (``kernel_noise_gains``).
GAIN_SLICE = 1024


def kernel_noise_gains(kernels_t: torch.Tensor) -> torch.Tensor:
    """Each kernel's noise gain ``||K||_F^2 / coils``: kernels_t (m, coils * sources, coils)
    complex (the transposed layout) → (m,) float32. Summed ``GAIN_SLICE`` kernels at a time: the
    squares of a whole chunk at once (tens of MB of fresh memory) cost 9x more than the sums."""
    gains = torch.empty(kernels_t.shape[0], dtype=torch.float32, device=kernels_t.device)
    for start in range(0, kernels_t.shape[0], GAIN_SLICE):
        part = torch.view_as_real(kernels_t[start : start + GAIN_SLICE])
        gains[start : start + GAIN_SLICE] = part.square().sum(dim=(1, 2, 3))
    return gains / kernels_t.shape[2]


def grid_with_kernels(
    samples: np.ndarray, geometry: SampleGeometry, kernels: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device,
    rows: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Grid a frame with kernels, chunk by chunk (memory: the chunk being applied), and the
    kernels' noise gain on each point.

    A kernel's noise gain is ``||K||_F^2 / coils``: the noise power it passes from white sources
    of unit variance, per target coil (1 for a kernel that copies one sample; a ridge shrinks it
    below 1). Each point's is the mean over the samples landing there; a sample without a
    kernel (not in ``rows``) counts 1.

    Args:
        samples: shape (coils, total_samples), complex64.
        geometry: the frame's sample geometry (same trajectory the kernels were made for).
        kernels: consecutive chunks and their kernels' noise gains: shapes (m, coils * sources,
            coils), complex64 (the transposed layout of ``igrog_gadget.core.plan.KernelChunks``),
            and (m,) float32 (``kernel_noise_gains``; ``KernelChunks.with_noise_gains``), one
            kernel per sample of the geometry, or per sample of ``rows``.
        rows: shape (k,), int64: the samples the kernels are for (None: all); the others add
            nothing, but count in their grid point's hits.
    Returns:
        ``(kspace (coils, [nz,] ny, nx) complex64, hits ([nz,] ny, nx) int32, noise_gain ([nz,] ny,
        nx) float32, 0 where nothing landed)`` on ``device``.
    """
    samples_t = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.complex64)).to(device)
    grid_index = torch.from_numpy(geometry.grid_index).to(device)
    kernel_sources, kernel_targets = geometry.source_index, geometry.grid_index
    if rows is not None:
        kernel_sources, kernel_targets = kernel_sources[rows], kernel_targets[rows]
    source_index = torch.from_numpy(np.ascontiguousarray(kernel_sources)).to(device)
    target_index = torch.from_numpy(np.ascontiguousarray(kernel_targets)).to(device)
    count = source_index.shape[0]
    points = math.prod(geometry.matrix)
    sums = torch.zeros(points, samples.shape[0], dtype=torch.complex64, device=device)
    gain_sums = torch.zeros(points, dtype=torch.float32, device=device)
    if rows is not None:  # a sample without a kernel counts 1
        without = np.ones(geometry.num_samples, dtype=bool)
        without[rows] = False
        others = torch.from_numpy(geometry.grid_index[without]).to(device)
        gain_sums.index_add_(0, others, torch.ones(others.shape[0], dtype=torch.float32, device=device))
    start = 0
    for chunk, gains in kernels:
        chunk_t = chunk.to(device)
        stop = start + chunk_t.shape[0]
        if stop > count:
            raise ValueError(f"{stop} kernels for {count} samples")
        values = apply_transposed_kernels(chunk_t, gather_sources(samples_t, source_index[start:stop]))
        sums.index_add_(0, target_index[start:stop], values)
        gain_sums.index_add_(0, target_index[start:stop], gains.to(device))
        start = stop
    if start != count:
        raise ValueError(f"{start} kernels for {count} samples")
    kspace, hits = sums_to_mean(sums, grid_index, geometry.matrix)
    noise_gain = gain_sums.reshape(hits.shape) / hits.clamp(min=1).to(torch.float32)
    return kspace, hits, noise_gain
