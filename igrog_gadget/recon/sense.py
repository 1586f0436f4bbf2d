"""Cartesian SENSE of gridded k-space: conjugate gradients on the weighted normal equations, in torch.

Minimises ``sum_k W(k) |(F S x)(k) - y(k)|^2 + lam ||x||^2`` over the image ``x``: ``S`` the
coil maps, ``F`` the package's centred orthonormal FFT (``igrog_gadget.gridding.fft``), ``W``
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

from igrog_gadget.gridding.fft import centred_fftn
from igrog_gadget.gridding.solve import conjugate_gradients

class CartesianSense:
    """``A = W^(1/2) F S`` on a Cartesian grid (2D or 3D).

    Args:
        maps: (coils, *shape) complex64 coil sensitivities.
        weights: (*shape) float32 data weights, 0 where the k-space holds no data.
    """

    def __init__(self, maps: torch.Tensor, weights: torch.Tensor) -> None:
        self.maps = maps
        self.weights = weights.to(device=maps.device, dtype=torch.float32)
        self.axes = tuple(range(-(maps.ndim - 1), 0))

    def adjoint(self, kspace: torch.Tensor) -> torch.Tensor:
        """``S^H F^H W y``: (coils, *shape) → (*shape)."""
        return torch.sum(self.maps.conj() * centred_fftn(kspace * self.weights, self.axes, inverse=True), dim=0)

    def normal(self, image: torch.Tensor) -> torch.Tensor:
        """``S^H F^H W F S x``: (*shape) → (*shape)."""
        coil_kspace = centred_fftn(self.maps * image, self.axes) * self.weights
        return torch.sum(self.maps.conj() * centred_fftn(coil_kspace, self.axes, inverse=True), dim=0)


def sense_reconstruct(
    kspace: torch.Tensor, operator: CartesianSense, lam: float, iterations: int
) -> torch.Tensor:
    """``iterations`` CG steps on ``(S^H F^H W F S + lam I) x = S^H F^H W y`` from x = 0.

    Args:
        kspace: (coils, *shape) complex64 gridded k-space ``y`` (k = 0 at index n // 2).
        operator: maps and weights.
        lam: absolute Tikhonov weight (see the module docstring for the relative one).
        iterations: CG steps.

    Returns:
        (*shape) complex64 image (pixel r = 0 at index n // 2), on the operator's device.
    """
    rhs = operator.adjoint(kspace.to(device=operator.maps.device, dtype=operator.maps.dtype))
    return conjugate_gradients(
        lambda x: operator.normal(x) + lam * x, rhs, iterations, stop=lambda squared_residual: False
    )
