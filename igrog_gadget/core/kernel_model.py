"""The kernel model every variant shares: source offsets → complex kernel."""

from __future__ import annotations

import torch
from torch import nn

from igrog_gadget.core.pairs import whitening_or_identity
from igrog_gadget.core.refit import refit_head
from igrog_gadget.arch.mlp import ComplexKernelMLP
from igrog_gadget.config import ModelConfig


class KernelModel(nn.Module):
    """Wraps ``ComplexKernelMLP`` for the engine: ``model(batch)`` reads ``batch["offsets"]``.

    Input: ``batch["offsets"]`` shape (batch, sources, offset_dims), grid units (2 in 2D, 3 in 3D).
    Output: kernels shape (batch, coils, coils * sources), complex64.

    The network predicts the kernel for *whitened* sources; ``whitening`` (coils*sources,
    coils*sources), complex, maps it back (``kernel = net(offsets) @ whitening``). This is
    a reparameterisation that leaves the model class unchanged but makes the least-squares
    problem well conditioned, so that gradient descent converges in seconds.

    A batch of training pairs carries ``whitened_sources`` (``W s``, made once with the pairs):
    the model then gives the kernels for those, ``net(offsets)``, and no step multiplies by
    ``W``; a batch without them (the frame's samples) gets the kernels for raw sources.
    """

    whitening: torch.Tensor
    """Shape (coils * sources, coils * sources), complex (a buffer; the identity without whitening)."""

    def __init__(
        self,
        num_sources: int,
        num_coils: int,
        config: ModelConfig,
        whitening: torch.Tensor | None = None,
        seed: int = 0,
        offset_dims: int = 2,
    ) -> None:
        """``seed``: ``training.seed`` (the Fourier feature frequencies); ``offset_dims``: 2 or 3."""
        super().__init__()
        self.register_buffer("whitening", whitening_or_identity(whitening, num_coils * num_sources))
        self.net = ComplexKernelMLP(
            num_sources=num_sources,
            num_coils=num_coils,
            hidden_width=config.hidden_width,
            hidden_layers=config.hidden_layers,
            activation=config.activation,
            fourier_features=config.fourier_features,
            fourier_scale=config.fourier_scale,
            bottleneck=config.bottleneck,
            seed=seed,
            offset_dims=offset_dims,
        )

    def refit_head(self, batch: dict[str, torch.Tensor], regularization: float) -> float:
        """Solve the head exactly on ``batch`` (offsets, whitened_sources, targets); returns the residual."""
        return refit_head(self.net, batch["offsets"], batch["whitened_sources"], batch["targets"], regularization)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if "whitened_sources" in batch:  # training pairs: the kernels for their whitened sources
            return self.net(batch["offsets"])
        # = net(offsets) @ whitening, with the whitening folded into the (linear) head: one
        # (coils*sources)^2 product per batch instead of one per sample
        return self.net.forward_folded(batch["offsets"], self.whitening)
