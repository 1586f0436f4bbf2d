"""Model of the fieldcorr ``kernel`` mode: (source offsets, sample time) → complex kernel.

The ``hybrid`` mode uses the basic model (``KernelModel``): its kernels are field-free.
"""

from __future__ import annotations

import torch
from torch import nn

from igrog_gadget.core.pairs import whitening_or_identity
from igrog_gadget.arch.mlp import ComplexKernelMLP
from igrog_gadget.config import ModelConfig


class TimeKernelModel(nn.Module):
    """Engine wrapper: ``model(batch)`` reads ``batch["offsets"]`` (batch, sources, offset_dims) and
    ``batch["times"]`` (batch,) seconds; returns kernels (batch, coils, coils * sources) for the
    raw sources (``net(...) @ whitening``), or, for training pairs (a batch with
    ``whitened_sources``), for their whitened sources (``net(...)``), as ``KernelModel``.

    The network is the basic ``ComplexKernelMLP`` with one extra input, the time as
    ``2 t / time_scale - 1`` (so [-1, 1] over the readout), next to the flattened offsets
    (through the same random Fourier features when configured)."""

    def __init__(
        self,
        num_sources: int,
        num_coils: int,
        config: ModelConfig,
        time_scale_s: float,
        whitening: torch.Tensor | None = None,
        seed: int = 0,
        offset_dims: int = 2,
    ) -> None:
        """``offset_dims``: coordinates per source offset (2, or 3 for a 3D frame)."""
        super().__init__()
        self.register_buffer("whitening", whitening_or_identity(whitening, num_coils * num_sources))
        self.time_scale_s: torch.Tensor
        self.register_buffer("time_scale_s", torch.tensor(float(time_scale_s)))
        self.net = ComplexKernelMLP(
            num_sources,
            num_coils,
            hidden_width=config.hidden_width,
            hidden_layers=config.hidden_layers,
            activation=config.activation,
            fourier_features=config.fourier_features,
            fourier_scale=config.fourier_scale,
            extra_inputs=1,
            seed=seed,
            offset_dims=offset_dims,
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        offsets = batch["offsets"]
        time = 2.0 * batch["times"].reshape(offsets.shape[0], 1) / self.time_scale_s - 1.0
        kernels = self.net(offsets, time)
        return kernels if "whitened_sources" in batch else kernels @ self.whitening
