"""Non-uniform FFTs (finufft) in the package's k-space convention.

Convention: an image ``x`` of shape (..., ny, nx) with pixel r = 0 at index n//2 has
k-space ``K(k) = 1/sqrt(nx*ny) * sum_r x[r] exp(-2 pi i k.r / n)`` with k in grid units
(cycles/FOV). On integer k this is the centred orthonormal FFT (``igrog_gadget.gridding.fft.centred_fft2``).
"""

from __future__ import annotations

import finufft
import numpy as np

_EPS = 1e-7


def _angles(coords: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    ny, nx = shape
    ky = (2 * np.pi / ny) * coords[:, 1].astype(np.float64)
    kx = (2 * np.pi / nx) * coords[:, 0].astype(np.float64)
    return ky, kx


def nufft_forward(image: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """k-space of ``image`` at arbitrary positions.

    Args:
        image: shape (channels, ny, nx), complex.
        coords: shape (n, 2), (kx, ky) in grid units of this image's grid.
    Returns:
        shape (channels, n), complex64.
    """
    channels, ny, nx = image.shape
    ky, kx = _angles(coords, (ny, nx))
    values = finufft.nufft2d2(ky, kx, np.ascontiguousarray(image, dtype=np.complex128), eps=_EPS, isign=-1)
    return (values / np.sqrt(nx * ny)).reshape(channels, -1).astype(np.complex64)


def nufft_adjoint(samples: np.ndarray, coords: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Adjoint of ``nufft_forward``.

    Args:
        samples: shape (channels, n), complex.
        coords: shape (n, 2), (kx, ky) in grid units.
        shape: (ny, nx) of the image grid.
    Returns:
        shape (channels, ny, nx), complex64.
    """
    ny, nx = shape
    ky, kx = _angles(coords, (ny, nx))
    image = finufft.nufft2d1(
        ky, kx, np.ascontiguousarray(samples, dtype=np.complex128), n_modes=(ny, nx), eps=_EPS, isign=1
    )
    return (image / np.sqrt(nx * ny)).reshape(samples.shape[0], ny, nx).astype(np.complex64)
