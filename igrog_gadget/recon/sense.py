"""Cartesian SENSE of gridded k-space: conjugate gradients on the weighted normal equations, in torch.

Minimises ``sum_k W(k) |(F S x)(k) - y(k)|^2 + lam ||x||^2`` over the image ``x``: ``S`` the
coil maps, ``F`` the package's centred orthonormal FFT (``igrog_gadget.numerics.fft``; computed
in origin-first order, see ``CartesianSense``), ``W``
the per-point data weights (0 where nothing was gridded), ``lam`` = ``regularization`` x the
mean weight of the gridded points (so it does not depend on the weights' scale; with unit-norm
maps and W the mask of gridded points the largest eigenvalue of ``S^H F^H W F S`` is 1, and
``lam`` = ``regularization``). CG from x = 0 for a fixed number of iterations (no data-dependent stop: the
same input gives the same image), on the tensors' device (GPU when the maps are there).

With ``W`` = the mask of gridded points this is BART's ``pics -l2 -r lam -w 1`` on the same
k-space and maps (``benchmarks/recon_benchmark.py --check-bart`` compares them).
"""

from __future__ import annotations

import torch

from igrog_gadget.numerics.solve import conjugate_gradients

class CartesianSense:
    """``A = W^(1/2) F S`` on a Cartesian grid (2D or 3D).

    The operator works in *origin-first* order (``ifftshift`` of the package's centred arrays:
    pixel r = 0 and k = 0 at index 0), where ``F`` is the plain orthonormal FFT: the maps and
    weights are reordered once here and an image or k-space once per solve, instead of four
    shifts of every coil image per iteration. ``adjoint`` and ``normal`` take and return
    origin-first arrays; ``to_origin_first`` / ``to_centred`` convert.

    Args:
        maps: (coils, *shape) complex64 coil sensitivities, centred (r = 0 at index n // 2).
        weights: (*shape) float32 data weights, centred (k = 0 at index n // 2), 0 where the
            k-space holds no data.
    """

    def __init__(self, maps: torch.Tensor, weights: torch.Tensor) -> None:
        self.axes = tuple(range(-(maps.ndim - 1), 0))
        self.maps = self.to_origin_first(maps)
        self.weights = self.to_origin_first(weights.to(device=maps.device, dtype=torch.float32))

    def to_origin_first(self, array: torch.Tensor) -> torch.Tensor:
        """Centred (index n // 2 = origin) → origin-first order over the spatial axes."""
        return torch.fft.ifftshift(array, dim=self.axes)

    def to_centred(self, array: torch.Tensor) -> torch.Tensor:
        """Origin-first → centred order over the spatial axes."""
        return torch.fft.fftshift(array, dim=self.axes)

    def adjoint(self, kspace: torch.Tensor) -> torch.Tensor:
        """``S^H F^H W y``: (coils, *shape) → (*shape), origin-first."""
        images = torch.fft.ifftn(kspace * self.weights, dim=self.axes, norm="ortho")
        return torch.sum(self.maps.conj() * images, dim=0)

    def normal(self, image: torch.Tensor) -> torch.Tensor:
        """``S^H F^H W F S x``: (*shape) → (*shape), origin-first."""
        coil_kspace = torch.fft.fftn(self.maps * image, dim=self.axes, norm="ortho") * self.weights
        return torch.sum(self.maps.conj() * torch.fft.ifftn(coil_kspace, dim=self.axes, norm="ortho"), dim=0)


def sense_reconstruct(
    kspace: torch.Tensor, operator: CartesianSense, lam: float, iterations: int
) -> torch.Tensor:
    """``iterations`` CG steps on ``(S^H F^H W F S + lam I) x = S^H F^H W y`` from x = 0.

    Args:
        kspace: (coils, *shape) complex64 gridded k-space ``y``, centred (k = 0 at index n // 2).
        operator: maps and weights.
        lam: absolute Tikhonov weight (see the module docstring for the relative one).
        iterations: CG steps.

    Returns:
        (*shape) complex64 image, centred (pixel r = 0 at index n // 2), on the operator's device.
    """
    data = operator.to_origin_first(kspace.to(device=operator.maps.device, dtype=operator.maps.dtype))
    image = conjugate_gradients(
        lambda x: operator.normal(x) + lam * x, operator.adjoint(data), iterations, stop=lambda squared_residual: False
    )
    return operator.to_centred(image)
