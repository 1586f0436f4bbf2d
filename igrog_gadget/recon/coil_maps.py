"""Coil sensitivity maps from a Cartesian calibration block by ESPIRiT (Uecker et al., MRM 2014).

The calibration block's k-space patches span a low-dimensional signal space; in the image
domain that space becomes, at every pixel, a small coil-by-coil operator whose eigenvector of
eigenvalue ~1 is the coil sensitivity vector there (up to a phase). Here:

1. the calibration matrix: every ``kernel``-sized patch of the block (2D or 3D) as a row;
2. its right singular vectors above ``threshold`` x the largest singular value: the kernels;
3. the per-pixel operator ``G(r) = sum_j w_j(r) w_j(r)^H / kernel^dims``, ``w_j`` the kernel's
   Fourier transform. ``G`` is band-limited (its k-space spans ``2 kernel - 1`` points per
   axis), so its spectrum is computed exactly on a small grid, zero-padded and inverse
   transformed to the image grid: by FFT along every axis but the first, then plane by plane
   along the first as a small sum (``SLAB_BYTES`` of operator at a time: the maps' memory is
   bounded whatever the grid);
4. its leading eigenvector per pixel by power iteration; pixels whose eigenvalue is below
   ``crop`` get a zero map (outside the object, as ESPIRiT crops), the others have unit norm
   across coils and the phase of coil 0 removed.

Convention (the package's, ``igrog_gadget.numerics.fft``): k = 0 at index n // 2, image pixel
r = 0 at index n // 2, centred orthonormal FFT; a block entry ``[c, iy, ix]`` lies at
``k = (kx0 + ix, ky0 + iy)`` (``CalibrationBlock``), its own position does not matter here.
"""

from __future__ import annotations

from types import EllipsisType
from typing import Sequence

import numpy as np
import torch

from igrog_gadget.numerics.fft import centred_fftn

#: Power iterations of the per-pixel eigenvector.
POWER_ITERATIONS = 30
#: Iterations between normalisations of the power iteration.
NORMALISE_EVERY = 5
#: Bytes of the per-pixel operator evaluated at once (planes of the first image axis): bounds
#: the maps' memory whatever the grid (a 128^3 grid with 16 coils would need 8.6 GB at once).
SLAB_BYTES = 256 << 20


def calibration_matrix(block: torch.Tensor, kernel: int) -> torch.Tensor:
    """Every ``kernel``-wide patch of ``block`` as a row.

    Args:
        block: (coils, ay, ax) or (coils, az, ay, ax), complex.
        kernel: patch side (per axis), at most the block's smallest side.

    Returns:
        (patches, coils * kernel^dims), row p = the patch at position p, flattened (coil, z, y, x).
    """
    dims = block.ndim - 1
    patches = block
    for axis in range(1, dims + 1):
        patches = patches.unfold(axis, kernel, 1)  # (coils, *positions, *kernel)
    coils = block.shape[0]
    positions = patches.shape[1 : 1 + dims]
    rows = patches.permute(*range(1, dims + 1), 0, *range(dims + 1, 2 * dims + 1))
    return rows.reshape(int(torch.tensor(positions).prod()), coils * kernel**dims)


def espirit_maps(
    block: torch.Tensor,
    shape: Sequence[int],
    kernel: int = 6,
    threshold: float = 0.02,
    crop: float = 0.8,
) -> torch.Tensor:
    """ESPIRiT sensitivity maps (one set) of a calibration block on an image grid.

    Args:
        block: (coils, ay, ax) or (coils, az, ay, ax), complex64 k-space, fully sampled.
        shape: image grid (ny, nx) or (nz, ny, nx).
        kernel: patch side; reduced to the block's smallest side when larger.
        threshold: singular values kept, relative to the largest.
        crop: maps are zero where the eigenvalue is below this (0 keeps every pixel).

    Returns:
        (coils, *shape) complex64 on ``block``'s device: unit norm across coils where kept,
        coil 0 real and non-negative.
    """
    dims = block.ndim - 1
    if len(shape) != dims:
        raise ValueError(f"a {dims}D block needs a {dims}D image shape, got {tuple(shape)}")
    kernel = max(1, min(int(kernel), *block.shape[1:]))
    coils = block.shape[0]
    matrix = calibration_matrix(block.to(torch.complex64), kernel)
    _, singular, right = torch.linalg.svd(matrix, full_matrices=False)
    kept = right[singular > threshold * singular[0]]  # (kernels, coils * kernel^dims), rows = V^H
    if kept.shape[0] == 0:  # an all-zero block: no signal space, no maps
        return torch.zeros((coils, *shape), dtype=torch.complex64, device=block.device)
    kernels = kept.reshape(-1, coils, *([kernel] * dims))
    shape = tuple(int(n) for n in shape)
    spectrum = _operator_spectrum(kernels)  # (coils, coils, *small), centred
    partial = _transform_inner_axes(spectrum, shape)  # (coils, coils, small[0], *shape[1:]), origin first
    maps = torch.empty((*shape, coils), dtype=torch.complex64, device=block.device)
    value = torch.empty(shape, dtype=torch.float32, device=block.device)
    plane = coils * coils * int(np.prod(shape[1:])) * 8  # bytes of the operator on one plane of the first axis
    slab = max(1, min(shape[0], SLAB_BYTES // max(plane, 1)))
    for start in range(0, shape[0], slab):
        stop = min(shape[0], start + slab)
        operator = _operator_planes(partial, shape[0], start, stop)  # (stop - start, *shape[1:], coils, coils)
        maps[start:stop], value[start:stop] = _leading_eigenvectors(operator)
    reference = maps[..., :1]
    maps = maps * torch.where(reference.abs() > 0, reference.conj() / reference.abs().clamp_min(1e-30), 1)
    maps = torch.where((value >= crop)[..., None], maps, torch.zeros((), dtype=maps.dtype, device=maps.device))
    return torch.fft.fftshift(maps.movedim(-1, 0), dim=tuple(range(1, dims + 1))).contiguous()


def _leading_eigenvectors(operator: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Power iteration of (..., coils, coils) Hermitian matrices from a vector of ones: the
    unit eigenvectors (..., coils) and their eigenvalues (...)."""
    vectors = torch.ones((*operator.shape[:-1], 1), dtype=operator.dtype, device=operator.device)
    for step in range(1, POWER_ITERATIONS + 1):
        vectors = operator @ vectors
        if step % NORMALISE_EVERY == 0 or step == POWER_ITERATIONS:  # eigenvalues <= ~1: no overflow between
            vectors = vectors / _coil_norm(vectors).clamp_min(1e-30)[..., None, None]
    return vectors[..., 0], _coil_norm(operator @ vectors)  # the eigenvalue: |G v| for |v| = 1


def _coil_norm(vectors: torch.Tensor) -> torch.Tensor:
    """|v| over the last two axes of (..., coils, 1) complex vectors (real arithmetic: faster
    than a complex ``vector_norm``)."""
    return torch.view_as_real(vectors).square().sum(dim=(-3, -2, -1)).sqrt()


def _operator_spectrum(kernels: torch.Tensor) -> torch.Tensor:
    """The k-space of ``G(r) = sum_j w_j(r) w_j(r)^H / kernel^dims`` (``w_j`` the kernels' Fourier
    transforms): (coils, coils, *[2 kernel] * dims), centred. ``G`` spans ``2 kernel - 1`` points
    per axis, so it is exact on a ``2 kernel`` grid.

    kernels: (kernels, coils, *[kernel] * dims)."""
    count, coils = kernels.shape[:2]
    dims = kernels.ndim - 2
    kernel = kernels.shape[-1]
    small = tuple(2 * kernel for _ in range(dims))
    axes = tuple(range(-dims, 0))
    padded = _embed(kernels, small)  # (kernels, coils, *small), kernel centred at n // 2
    transformed = centred_fftn(padded, axes, inverse=True, norm="forward")  # w_j(r), unnormalised
    values = transformed.reshape(count, coils, -1)  # (kernels, coils, points)
    gram = torch.einsum("kap,kbp->pab", values, values.conj()) / kernel**dims  # (points, coils, coils)
    gram = gram.reshape(*small, coils, coils).movedim((-2, -1), (0, 1))  # (coils, coils, *small)
    return centred_fftn(gram, axes, norm="forward")


def _transform_inner_axes(spectrum: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """``G``'s spectrum zero-padded to ``shape`` and inverse-transformed along every spatial axis
    but the first (placed origin first, so that no full-size array is shifted): (coils, coils,
    small[0], *shape[1:]), pixel order origin first."""
    small = spectrum.shape[2:]
    inner = len(shape) - 1
    out = torch.zeros((*spectrum.shape[:3], *shape[1:]), dtype=spectrum.dtype, device=spectrum.device)
    wrapped = [(torch.arange(m, device=spectrum.device) - m // 2) % n for m, n in zip(small[1:], shape[1:])]
    index: tuple[slice | torch.Tensor, ...] = (slice(None), slice(None), slice(None), *torch.meshgrid(*wrapped, indexing="ij"))
    out[index] = spectrum
    return torch.fft.ifftn(out, dim=tuple(range(-inner, 0)), norm="forward")


def _operator_planes(partial: torch.Tensor, n0: int, start: int, stop: int) -> torch.Tensor:
    """``G`` on the planes ``start:stop`` of the first spatial axis (origin-first indices):
    the remaining inverse transform of ``partial`` as a small sum over its ``small[0]`` rows,
    (stop - start, *shape[1:], coils, coils)."""
    rows = partial.shape[2]
    k = torch.arange(rows, device=partial.device, dtype=torch.float64) - rows // 2
    z = torch.arange(start, stop, device=partial.device, dtype=torch.float64)
    phases = torch.exp(2j * np.pi * z[:, None] * k[None, :] / n0).to(partial.dtype)  # (planes, rows)
    planes = torch.einsum("zr,abr...->z...ab", phases, partial)
    return planes.contiguous()


def _embed(array: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """``array`` (..., *inner) centred in zeros of (..., *shape) (index n // 2 onto n // 2); an
    axis longer than its target is cropped around its centre."""
    dims = len(shape)
    lead = array.shape[: array.ndim - dims]
    out = torch.zeros((*lead, *shape), dtype=array.dtype, device=array.device)
    source: list[slice | EllipsisType] = [Ellipsis]
    target: list[slice | EllipsisType] = [Ellipsis]
    for inner, outer in zip(array.shape[-dims:], shape):
        size = min(inner, outer)
        source.append(slice(inner // 2 - size // 2, inner // 2 - size // 2 + size))
        target.append(slice(outer // 2 - size // 2, outer // 2 - size // 2 + size))
    out[tuple(target)] = array[tuple(source)]
    return out
