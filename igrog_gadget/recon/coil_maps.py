"""Coil sensitivity maps from a Cartesian calibration block by ESPIRiT (Uecker et al., MRM 2014).

The calibration block's k-space patches span a low-dimensional signal space; in the image
domain that space becomes, at every pixel, a small coil-by-coil operator whose eigenvector of
eigenvalue ~1 is the coil sensitivity vector there (up to a phase). Here:

1. the calibration matrix: every ``kernel``-sized patch of the block (2D or 3D) as a row;
2. its right singular vectors above ``threshold`` x the largest singular value: the kernels;
3. the per-pixel operator ``G(r) = sum_j w_j(r) w_j(r)^H / kernel^dims``, ``w_j`` the kernel's
   Fourier transform. ``G`` is band-limited (its k-space spans ``2 kernel - 1`` points per
   axis), so it is evaluated exactly on a small grid and zero-padded to the image grid by FFT
   (coils^2 image-sized FFTs, whatever the number of kernels);
4. its leading eigenvector per pixel by power iteration; pixels whose eigenvalue is below
   ``crop`` get a zero map (outside the object, as ESPIRiT crops), the others have unit norm
   across coils and the phase of coil 0 removed.

Convention (the package's, ``igrog_gadget.gridding.fft``): k = 0 at index n // 2, image pixel
r = 0 at index n // 2, centred orthonormal FFT; a block entry ``[c, iy, ix]`` lies at
``k = (kx0 + ix, ky0 + iy)`` (``CalibrationBlock``), its own position does not matter here.
"""

from __future__ import annotations

from typing import Sequence

import torch

from igrog_gadget.gridding.fft import centred_fftn

#: Power iterations of the per-pixel eigenvector.
POWER_ITERATIONS = 30
#: Iterations between normalisations of the power iteration.
NORMALISE_EVERY = 5


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
    operator = _pixel_operator(kernels, tuple(int(n) for n in shape))  # (*shape, coils, coils), origin first
    vectors = torch.ones((*operator.shape[:-1], 1), dtype=operator.dtype, device=operator.device)
    for step in range(1, POWER_ITERATIONS + 1):
        vectors = operator @ vectors
        if step % NORMALISE_EVERY == 0 or step == POWER_ITERATIONS:  # eigenvalues <= ~1: no overflow between
            vectors = vectors / _coil_norm(vectors).clamp_min(1e-30)[..., None, None]
    value = _coil_norm(operator @ vectors)  # the eigenvalue, |G v| for |v| = 1
    maps = vectors[..., 0]  # (*shape, coils)
    reference = maps[..., :1]
    maps = maps * torch.where(reference.abs() > 0, reference.conj() / reference.abs().clamp_min(1e-30), 1)
    maps = torch.where((value >= crop)[..., None], maps, torch.zeros((), dtype=maps.dtype, device=maps.device))
    return torch.fft.fftshift(maps.movedim(-1, 0), dim=tuple(range(1, dims + 1))).contiguous()


def _coil_norm(vectors: torch.Tensor) -> torch.Tensor:
    """|v| over the last two axes of (..., coils, 1) complex vectors (real arithmetic: faster
    than a complex ``vector_norm``)."""
    return torch.view_as_real(vectors).square().sum(dim=(-3, -2, -1)).sqrt()


def _pixel_operator(kernels: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """``G(r) = sum_j w_j(r) w_j(r)^H / kernel^dims`` on the image grid in origin-first pixel
    order (pixel r = 0 at index 0), (*shape, coils, coils).

    kernels: (kernels, coils, *[kernel] * dims). ``G``'s k-space spans ``2 kernel - 1`` points
    per axis: computed exactly on a ``2 kernel`` grid, then interpolated to ``shape`` by
    zero-padding its k-space (placed origin first, so that no full-size array is shifted)."""
    count, coils = kernels.shape[:2]
    dims = kernels.ndim - 2
    kernel = kernels.shape[-1]
    small = tuple(2 * kernel for _ in shape)
    axes = tuple(range(-dims, 0))
    padded = _embed(kernels, small)  # (kernels, coils, *small), kernel centred at n // 2
    transformed = centred_fftn(padded, axes, inverse=True, norm="forward")  # w_j(r), unnormalised
    values = transformed.reshape(count, coils, -1)  # (kernels, coils, points)
    gram = torch.einsum("kap,kbp->pab", values, values.conj()) / kernel**dims  # (points, coils, coils)
    gram = gram.reshape(*small, coils, coils).movedim((-2, -1), (0, 1))  # (coils, coils, *small)
    spectrum = centred_fftn(gram, axes, norm="forward")  # exact: support 2 kernel - 1 < 2 kernel
    full = torch.zeros((coils, coils, *shape), dtype=spectrum.dtype, device=spectrum.device)
    wrapped = [(torch.arange(m, device=spectrum.device) - m // 2) % n for m, n in zip(small, shape)]
    full[(slice(None), slice(None), *torch.meshgrid(*wrapped, indexing="ij"))] = spectrum
    full = torch.fft.ifftn(full, dim=axes, norm="forward")
    return full.movedim((0, 1), (-2, -1)).contiguous()  # (*shape, coils, coils)


def _embed(array: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """``array`` (..., *inner) centred in zeros of (..., *shape) (index n // 2 onto n // 2); an
    axis longer than its target is cropped around its centre."""
    dims = len(shape)
    lead = array.shape[: array.ndim - dims]
    out = torch.zeros((*lead, *shape), dtype=array.dtype, device=array.device)
    source, target = [], []
    for inner, outer in zip(array.shape[-dims:], shape):
        size = min(inner, outer)
        source.append(slice(inner // 2 - size // 2, inner // 2 - size // 2 + size))
        target.append(slice(outer // 2 - size // 2, outer // 2 - size // 2 + size))
    out[(..., *target)] = array[(..., *source)]
    return out
