"""Exact least-squares refit of the kernel network's head after gradient training.

The kernel is linear in the head's parameters: with features ``phi(d)`` (the network's
bottleneck, plus a constant for the bias) the prediction for target coil c is
``sum_b sum_m phi_b(d) Z[b, c, m] s_m`` with complex ``Z``. Given the trained features, the
best head is a linear least-squares problem with design rows ``phi(d) (x) s`` shared by all
target coils; solving it exactly finishes in one step what gradient descent approaches slowly.
"""

from __future__ import annotations

import logging

import torch

from igrog_gadget.arch.mlp import ComplexKernelMLP

logger = logging.getLogger(__name__)


@torch.no_grad()
def refit_head(
    net: ComplexKernelMLP,
    offsets: torch.Tensor,
    sources: torch.Tensor,
    targets: torch.Tensor,
    regularization: float = 1e-4,
) -> float:
    """Replace ``net.head`` by the regularised least-squares solution on the given pairs.

    Args:
        net: a ``ComplexKernelMLP`` (``features``, ``head``, ``num_coils``, ``num_sources``).
        offsets: (pairs, sources, 2) float.
        sources: (pairs, coils * sources) complex — in the coordinates the head's kernel is
            applied to (whitened sources when the model whitens).
        targets: (pairs, coils) complex.
        regularization: diagonal loading relative to the mean diagonal of the normal matrix.
    Returns:
        Mean squared residual of the refit head on the pairs.
    """
    coils, num_sources = net.num_coils, net.num_sources
    size = coils * num_sources
    features = net.features(offsets)  # (P, F)
    ones = torch.ones(features.shape[0], 1, dtype=features.dtype, device=features.device)
    phi = torch.cat([features, ones], dim=1).to(sources.dtype)  # (P, F+1)
    design = (phi[:, :, None] * sources[:, None, :]).reshape(phi.shape[0], -1)  # (P, (F+1)*size)
    normal = design.conj().T @ design
    rhs = design.conj().T @ targets  # ((F+1)*size, coils)
    load = regularization * normal.diagonal().real.mean()
    normal = normal + load * torch.eye(normal.shape[0], dtype=normal.dtype, device=normal.device)
    solution = torch.linalg.solve(normal, rhs)  # ((F+1)*size, coils): Z[b, m, c]
    residual = float((design @ solution - targets).abs().square().mean())
    z = solution.reshape(phi.shape[1], size, coils).permute(2, 1, 0)  # (coils, size, F+1)
    real = torch.stack([z.real, z.imag], dim=2)  # (coils, size, 2, F+1): head output order
    weight = real.reshape(coils * size * 2, phi.shape[1])
    net.head.weight.copy_(weight[:, :-1].to(net.head.weight.dtype))
    net.head.bias.copy_(weight[:, -1].to(net.head.bias.dtype))
    logger.debug("head refit on %d pairs: residual %.4g", phi.shape[0], residual)
    return residual
