"""The centred FFT of the package's convention, and the root-sum-of-squares image made with it.

Convention: an image ``x`` (..., ny, nx) with pixel r = 0 at index ``n // 2`` and its k-space
``K`` with k = 0 at index ``n // 2`` are related by ``K = fftshift(fft2(ifftshift(x), norm="ortho"))``
(orthonormal: the image-domain noise std equals the k-space one).

One implementation for numpy arrays and torch tensors: a tensor is transformed by ``torch.fft``
on its own device, an array by ``numpy.fft`` (each exactly as the callers computed it before).
Importing this module does not import torch.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "device")


def centred_fftn(x: Any, axes: Sequence[int] = (-2, -1), *, inverse: bool = False, norm: Literal["backward", "ortho", "forward"] = "ortho") -> Any:
    """Centred FFT (``inverse``: its inverse) over ``axes``; ``norm`` as numpy / torch take it."""
    axes = tuple(axes)
    if _is_tensor(x):
        import torch

        transform = torch.fft.ifftn if inverse else torch.fft.fftn
        return torch.fft.fftshift(transform(torch.fft.ifftshift(x, dim=axes), dim=axes, norm=norm), dim=axes)
    transform = np.fft.ifftn if inverse else np.fft.fftn
    return np.fft.fftshift(transform(np.fft.ifftshift(x, axes=axes), axes=axes, norm=norm), axes=axes)


def centred_fft2(image: Any) -> Any:
    """Centred orthonormal 2D FFT over the last two axes: (..., ny, nx) → (..., ny, nx)."""
    return centred_fftn(image, (-2, -1))


def centred_ifft2(kspace: Any) -> Any:
    """Centred orthonormal 2D inverse FFT over the last two axes: (..., ny, nx) → (..., ny, nx)."""
    return centred_fftn(kspace, (-2, -1), inverse=True)


def rss_image(kspace: Any) -> Any:
    """Root-sum-of-squares magnitude image of centred Cartesian k-space, 2D or 3D.

    Args:
        kspace: shape (coils, ny, nx) or (coils, nz, ny, nx), complex; k = 0 at index n // 2.

    Returns:
        Shape (ny, nx) or (nz, ny, nx), float32 (an array, or a tensor for a tensor); pixel r = 0
        at index n // 2; orthonormal FFT scaling.
    """
    if not _is_tensor(kspace):
        kspace = np.asarray(kspace)
    if kspace.ndim not in (3, 4):
        raise ValueError(f"kspace must have shape (coils, ny, nx) or (coils, nz, ny, nx), got {tuple(kspace.shape)}")
    power = abs(centred_fftn(kspace, tuple(range(1, kspace.ndim)), inverse=True)) ** 2
    if _is_tensor(kspace):
        return power.sum(dim=0).sqrt().float()
    return np.sqrt(np.sum(power, axis=0)).astype(np.float32)
