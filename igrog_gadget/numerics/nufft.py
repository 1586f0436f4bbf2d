"""Non-uniform FFTs (finufft) in the package's k-space convention, in 2D and 3D.

Convention: an image ``x`` of shape (..., ny, nx) (3D: (..., nz, ny, nx)) with pixel r = 0 at
index n//2 has k-space ``K(k) = 1/sqrt(prod n) * sum_r x[r] exp(-2 pi i sum_d k_d r_d / n_d)``
with k in grid units (cycles/FOV). On integer k this is the centred orthonormal FFT
(``igrog_gadget.numerics.fft.centred_fftn``). Positions are ``(kx, ky)`` or ``(kx, ky, kz)``:
their column count selects the dimensionality, whose profile
(``igrog_gadget.numerics.dimensions``) gives the transform, its precision and its dtypes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from igrog_gadget.environment import native_threads
from igrog_gadget.numerics.dimensions import DimensionProfile, dimensions_of_positions


#: finufft's upsampling factor, fixed. Left to finufft (2.5), it is chosen from the thread count
#: among other things: 2.0 on one thread, 1.25 on two for the same 3D transform, whose kernel is
#: then wider (its values 8 times closer to exact than the tolerance asks at 1e-4 in single
#: precision, for 1.6x the CPU time). Every value would then depend on ``gridding.cpu_threads``
#: and, where that is 0, on the host's processor count; fixed, they depend on the tolerance each
#: call asks for. 2.0 is finufft's standard factor (the smaller fine grid of 1.25 only pays for
#: transforms dominated by their FFT; here the grids are small and the points many).
UPSAMPLING = 2.0


def finufft_options() -> dict[str, int | float]:
    """Keyword options of every finufft call of the package: the calling thread's configured
    thread count (``igrog_gadget.environment.native_threads``, never OMP_NUM_THREADS), the
    fixed ``UPSAMPLING`` factor, and no warning when the thread count exceeds the threads
    OpenMP's environment would allow."""
    return {"nthreads": native_threads(), "upsampfac": UPSAMPLING, "showwarn": 0}


def finufft_points(coords: np.ndarray, shape: Sequence[int], dtype: type = np.float64) -> tuple[np.ndarray, ...]:
    """finufft's point arrays of positions ``coords`` (n, dims) = ``(kx, ky[, kz])`` in grid units
    of a grid of array shape ``shape`` ``([nz,] ny, nx)``: one array (n,) per array axis, first
    array axis first (``(ky, kx)`` or ``(kz, ky, kx)``), in radians, of ``dtype``."""
    dims = len(shape)
    return tuple(
        ((2 * np.pi / n) * coords[:, dims - 1 - axis].astype(np.float64)).astype(dtype, copy=False)
        for axis, n in enumerate(shape)
    )


def _profile(coords: np.ndarray, image_dims: int) -> DimensionProfile:
    dims = int(coords.shape[1]) if coords.ndim == 2 else 0
    if dims not in (2, 3) or dims != image_dims:
        raise ValueError(f"positions of shape {coords.shape} do not fit a {image_dims}D image grid")
    return dimensions_of_positions(coords)


def nufft_forward(image: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """k-space of ``image`` at arbitrary positions.

    Args:
        image: shape (channels, ny, nx) or (channels, nz, ny, nx), complex.
        coords: shape (n, 2) = (kx, ky), or (n, 3) = (kx, ky, kz), grid units of this image's grid.
    Returns:
        shape (channels, n), complex64.
    """
    channels, *shape = image.shape
    profile = _profile(coords, len(shape))
    points = finufft_points(coords, shape, profile.nufft_real)
    data: np.ndarray = np.ascontiguousarray(image, dtype=profile.nufft_complex)
    values = profile.nufft_type2()(*points, data, eps=profile.nufft_eps, isign=-1, **finufft_options())
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
    profile = _profile(coords, len(shape))
    points = finufft_points(coords, shape, profile.nufft_real)
    data: np.ndarray = np.ascontiguousarray(samples, dtype=profile.nufft_complex)
    image = profile.nufft_type1()(*points, data, n_modes=shape, eps=profile.nufft_eps, isign=1, **finufft_options())
    return (image / np.sqrt(np.prod(shape))).reshape(samples.shape[0], *shape).astype(np.complex64)
