"""Cartesian-side B0 correction of gridded k-space (the ``hybrid`` fieldcorr mode).

Field-free kernels move every sample onto its grid point *at its own acquisition time*: the
value on grid point g is the mean over the samples j that landed there of
``Y_tj(g) = FFT[x * exp(-2 pi i f t_j)](g)`` (x the field-free coil image, f the B0 map).
With the time segmentation ``exp(-2 pi i f t) ~= sum_l b_l(t) phi_l``,
``phi_l = exp(-2 pi i f tau_l)``, the gridded data are ``d = M A x`` with

    (A x)(g) = sum_l B_l(g) FFT[phi_l * x](g),    B_l(g) = mean_{j on g} b_l(t_j)

and M the mask of grid points that received samples. The field-free k-space is
``FFT[x]`` on M. ``x`` is estimated by conjugate phase, ``x0 = A^H d``, optionally refined by
``cg_iterations`` of conjugate gradients on ``A^H M A x = A^H d`` started at ``x0``.
Everything runs in torch on the gridding device; coils are processed together. 2D and 3D alike:
a 3D frame's map is (nz, ny, nx) and its FFTs are 3D (``FFT`` runs over the map's axes).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from igrog_gadget.numerics.fft import centred_fftn
from igrog_gadget.numerics.solve import conjugate_gradients

logger = logging.getLogger(__name__)


class SegmentedFieldOperator:
    """``A`` and ``A^H`` of the module docstring for one frame.

    Args:
        field_hz: shape (ny, nx) (3D: (nz, ny, nx)), the B0 map.
        tau_s: shape (L,), segment times.
        weights: shape (L, ny, nx) (3D: (L, nz, ny, nx)), complex tensor or array: ``B_l(g)``
            (zero where no sample landed).
        device: where to compute.
    """

    def __init__(
        self, field_hz: np.ndarray, tau_s: np.ndarray, weights: torch.Tensor | np.ndarray, device: torch.device
    ) -> None:
        field = torch.as_tensor(np.asarray(field_hz, dtype=np.float64), device=device)
        tau = torch.as_tensor(np.asarray(tau_s, dtype=np.float64), device=device)
        self.axes = tuple(range(-field.ndim, 0))
        """The image axes the FFTs run over: (-2, -1), or (-3, -2, -1) for a 3D map."""
        self.phases = torch.exp(-2j * np.pi * field[None] * tau.reshape(-1, *[1] * field.ndim)).to(torch.complex64)  # (L, [nz,] ny, nx)
        self.weights = torch.as_tensor(weights, device=device).to(torch.complex64)  # (L, [nz,] ny, nx)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(coils, [nz,] ny, nx) image → (coils, [nz,] ny, nx) k-space with the field at each point's times."""
        out = torch.zeros_like(x)
        for phase, weight in zip(self.phases, self.weights):
            out += weight * centred_fftn(phase * x, self.axes)
        return out

    def adjoint(self, d: torch.Tensor) -> torch.Tensor:
        """(coils, [nz,] ny, nx) k-space → (coils, [nz,] ny, nx) image (conjugate phase)."""
        out = torch.zeros_like(d)
        for phase, weight in zip(self.phases, self.weights):
            out += phase.conj() * centred_fftn(weight.conj() * d, self.axes, inverse=True)
        return out


def correct_field(
    kspace: torch.Tensor | np.ndarray,
    hits: torch.Tensor | np.ndarray,
    field_hz: np.ndarray,
    tau_s: np.ndarray,
    weights: torch.Tensor | np.ndarray,
    cg_iterations: int = 0,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Field-free k-space from field-free-kernel gridded k-space (tensors stay where they are
    when already on ``device``).

    Args:
        kspace: shape (coils, ny, nx) (3D: (coils, nz, ny, nx)), complex: gridded data (zero
            where ``hits`` is 0).
        hits: shape ([nz,] ny, nx), int: samples per grid point.
        field_hz: shape ([nz,] ny, nx), float: B0 map.
        tau_s: shape (L,), segment times (s).
        weights: shape (L, [nz,] ny, nx), complex: mean segment coefficients per grid point.
        cg_iterations: CG refinement iterations after the conjugate-phase estimate.
    Returns:
        shape (coils, [nz,] ny, nx), complex64 tensor on ``device``: corrected k-space, zero where ``hits`` is 0.
    """
    device = torch.device(device)
    operator = SegmentedFieldOperator(field_hz, tau_s, weights, device)
    mask = torch.as_tensor(hits > 0, device=device)
    data = torch.as_tensor(kspace, device=device).to(torch.complex64) * mask
    rhs = operator.adjoint(data)
    x = rhs.clone()
    if cg_iterations > 0:
        # CG on the normal equations A^H M A x = A^H d, started at the conjugate-phase estimate.
        floor = 1e-12 * torch.vdot(rhs.flatten(), rhs.flatten()).real
        x = conjugate_gradients(
            lambda image: operator.adjoint(mask * operator.forward(image)), rhs, cg_iterations,
            stop=lambda rr: bool(rr <= floor), x0=x,
        )
    return (centred_fftn(x, operator.axes) * mask).to(torch.complex64)
