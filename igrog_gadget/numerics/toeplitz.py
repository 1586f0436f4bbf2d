"""The normal operator ``F^H W F`` of a NUFFT as a convolution (Toeplitz embedding).

For samples at positions ``k_j`` with weights ``w_j``, ``(F^H W F x)(r) = sum_r' h(r - r') x(r')``
with ``h(d) = 1/N sum_j w_j exp(2 pi i sum_a k_ja d_a / n_a)`` (``nufft_forward`` /
``nufft_adjoint``'s convention, ``N = prod n``). ``h`` is computed once on the doubled grid (one
type-1 NUFFT of the weights), then every application is a zero-padded FFT convolution: two FFTs
of the doubled grid instead of a type-2 and a type-1 NUFFT of all samples (their spreading is
what costs in a 3D calibration solve of hundreds of thousands of samples).
"""

from __future__ import annotations

import numpy as np
import torch

from igrog_gadget.numerics.dimensions import dimensions_of_grid
from igrog_gadget.numerics.nufft import finufft_options, finufft_points


class ToeplitzNormal:
    """``x -> F^H W F x`` for images ``x`` of shape (channels, *shape) (see the module docstring).

    Args:
        coords: shape (n, dims) = (kx, ky[, kz]), grid units of the image grid ``shape``.
        weights: shape (n,), real, the ``W`` of the normal operator.
        shape: (ny, nx) or (nz, ny, nx) of the image grid.
    """

    def __init__(self, coords: np.ndarray, weights: np.ndarray, shape: tuple[int, ...]) -> None:
        self.shape = tuple(int(n) for n in shape)
        dims = len(self.shape)
        if coords.ndim != 2 or coords.shape[1] != dims or weights.shape != (coords.shape[0],):
            raise ValueError(f"positions {coords.shape} and weights {weights.shape} do not fit a {dims}D grid {self.shape}")
        points = finufft_points(coords, self.shape)  # double precision in 2D and 3D: h is computed once
        doubled = tuple(2 * n for n in self.shape)
        transform = dimensions_of_grid(self.shape).nufft_type1()
        kernel = transform(*points, weights.astype(np.complex128), n_modes=doubled, eps=1e-7, isign=1, **finufft_options())
        kernel = np.fft.ifftshift(kernel / np.prod(self.shape))  # h(d) at index d mod 2n
        self._axes = tuple(range(-dims, 0))
        self._spectrum = torch.fft.fftn(torch.from_numpy(kernel.astype(np.complex64)), dim=self._axes)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """``F^H W F image``: shape (channels, *shape) → (channels, *shape), complex64."""
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.complex64))
        padded = torch.fft.fftn(x, s=tuple(2 * n for n in self.shape), dim=self._axes)
        product = torch.fft.ifftn(padded * self._spectrum, dim=self._axes)
        crop = (slice(None),) + tuple(slice(0, n) for n in self.shape)
        return product[crop].numpy()
