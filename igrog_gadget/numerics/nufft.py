"""Non-uniform FFTs (finufft) in the package's k-space convention, in 2D and 3D.

Convention: an image ``x`` of shape (..., ny, nx) (3D: (..., nz, ny, nx)) with pixel r = 0 at
index n//2 has k-space ``K(k) = 1/sqrt(prod n) * sum_r x[r] exp(-2 pi i sum_d k_d r_d / n_d)``
with k in grid units (cycles/FOV). On integer k this is the centred orthonormal FFT
(``igrog_gadget.numerics.fft.centred_fftn``). Positions are ``(kx, ky)`` or ``(kx, ky, kz)``:
their column count selects 2D or 3D.
"""

from __future__ import annotations

import finufft
import numpy as np

from igrog_gadget.environment import native_threads

_EPS = 1e-7
#: Precision of the 3D transforms: 1e-5 (relative) lies far below the noise of any MRI data and
#: spreads each sample onto 5^3 instead of 7^3 grid points (the calibration solves of a 3D scan
#: run tens of transforms of the whole frame). 3D transforms run in single precision (finufft's
#: float32 library reaches 1e-5): half the memory and about half the time of double precision.
_EPS_3D = 1e-5


def finufft_options() -> dict[str, int]:
    """Keyword options of every finufft call of the package: the calling thread's configured
    thread count (``igrog_gadget.environment.native_threads``, never OMP_NUM_THREADS), and no
    warning when that exceeds the threads OpenMP's environment would allow."""
    return {"nthreads": native_threads(), "showwarn": 0}


def _angles(coords: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """finufft's point arrays, first image axis first: (ky, kx) or (kz, ky, kx), radians
    (float64 in 2D, float32 in 3D: the precision of the transform)."""
    dims = len(shape)
    dtype = np.float64 if dims == 2 else np.float32
    return tuple(
        ((2 * np.pi / n) * coords[:, dims - 1 - axis].astype(np.float64)).astype(dtype, copy=False)
        for axis, n in enumerate(shape)
    )


def _complex(dims: int) -> type:
    """Complex dtype of a transform's data: complex128 in 2D, complex64 in 3D (see ``_EPS_3D``)."""
    return np.complex128 if dims == 2 else np.complex64


def _check(coords: np.ndarray, image_dims: int) -> int:
    dims = int(coords.shape[1]) if coords.ndim == 2 else 0
    if dims not in (2, 3) or dims != image_dims:
        raise ValueError(f"positions of shape {coords.shape} do not fit a {image_dims}D image grid")
    return dims


def nufft_forward(image: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """k-space of ``image`` at arbitrary positions.

    Args:
        image: shape (channels, ny, nx) or (channels, nz, ny, nx), complex.
        coords: shape (n, 2) = (kx, ky), or (n, 3) = (kx, ky, kz), grid units of this image's grid.
    Returns:
        shape (channels, n), complex64.
    """
    channels, *shape = image.shape
    dims = _check(coords, len(shape))
    points = _angles(coords, tuple(shape))
    data: np.ndarray = np.ascontiguousarray(image, dtype=_complex(dims))
    if dims == 2:
        values = finufft.nufft2d2(*points, data, eps=_EPS, isign=-1, **finufft_options())
    else:
        values = finufft.nufft3d2(*points, data, eps=_EPS_3D, isign=-1, **finufft_options())
    return (values / np.sqrt(np.prod(shape))).reshape(channels, -1).astype(np.complex64)


def nufft_adjoint(samples: np.ndarray, coords: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Adjoint of ``nufft_forward``.

    Args:
        samples: shape (channels, n), complex.
        coords: shape (n, 2) or (n, 3), grid units.
        shape: (ny, nx) or (nz, ny, nx) of the image grid.
    Returns:
        shape (channels, *shape), complex64.
    """
    shape = tuple(int(n) for n in shape)
    dims = _check(coords, len(shape))
    points = _angles(coords, shape)
    data: np.ndarray = np.ascontiguousarray(samples, dtype=_complex(dims))
    if dims == 2:
        image = finufft.nufft2d1(*points, data, n_modes=shape, eps=_EPS, isign=1, **finufft_options())
    else:
        image = finufft.nufft3d1(*points, data, n_modes=shape, eps=_EPS_3D, isign=1, **finufft_options())
    return (image / np.sqrt(np.prod(shape))).reshape(samples.shape[0], *shape).astype(np.complex64)
