"""Model of the fieldcorr ``kernel`` mode: (source offsets, sample time) → complex kernel.

The ``hybrid`` mode uses the basic model (``BasicKernelModel``): its kernels are field-free.
"""

from __future__ import annotations

import torch
from torch import nn

from igrog_gadget.arch.mlp import FourierFeatures, make_activation
from igrog_gadget.config import ModelConfig


class TimeKernelMLP(nn.Module):
    """MLP from offsets (batch, sources, 2) and a normalised time (batch,) to a kernel.

    The time enters as ``2 t / time_scale - 1`` (so [-1, 1] over the readout) next to the
    flattened offsets, optionally through random Fourier features like the offsets.
    Output: (batch, coils, coils * sources), complex64, coil-major sources (as the basic MLP).
    """

    def __init__(
        self,
        num_sources: int,
        num_coils: int,
        time_scale_s: float,
        hidden_width: int = 128,
        hidden_layers: int = 3,
        activation: str = "gelu",
        fourier_features: int = 0,
        fourier_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.num_sources = num_sources
        self.num_coils = num_coils
        self.register_buffer("time_scale_s", torch.tensor(float(time_scale_s)))
        in_features = 2 * num_sources + 1
        layers: list[nn.Module] = []
        if fourier_features > 0:
            features = FourierFeatures(in_features, fourier_features, fourier_scale)
            layers.append(features)
            width = features.out_features
        else:
            width = in_features
        for _ in range(hidden_layers):
            layers += [nn.Linear(width, hidden_width), make_activation(activation)]
            width = hidden_width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 2 * num_coils * num_coils * num_sources)
        nn.init.zeros_(self.head.bias)
        nn.init.normal_(self.head.weight, std=1e-3)

    def forward(self, offsets: torch.Tensor, times_s: torch.Tensor) -> torch.Tensor:
        """offsets (batch, sources, 2), times_s (batch,) → kernels (batch, coils, coils * sources)."""
        batch = offsets.shape[0]
        time = (2.0 * times_s.reshape(batch, 1) / self.time_scale_s - 1.0).to(offsets.dtype)
        features = self.body(torch.cat([offsets.reshape(batch, -1), time], dim=1))
        out = self.head(features).view(batch, self.num_coils, self.num_coils * self.num_sources, 2)
        return torch.view_as_complex(out.contiguous())


class TimeKernelModel(nn.Module):
    """Engine wrapper: ``model(batch)`` reads ``batch["offsets"]`` (batch, sources, 2) and
    ``batch["times"]`` (batch,) seconds; returns kernels (batch, coils, coils * sources) for the
    raw sources (``net(...) @ whitening``, as ``BasicKernelModel``)."""

    def __init__(
        self,
        num_sources: int,
        num_coils: int,
        config: ModelConfig,
        time_scale_s: float,
        whitening: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        size = num_coils * num_sources
        if whitening is None:
            whitening = torch.eye(size, dtype=torch.complex64)
        if tuple(whitening.shape) != (size, size):
            raise ValueError(f"whitening must have shape ({size}, {size}), got {tuple(whitening.shape)}")
        self.register_buffer("whitening", whitening.to(torch.complex64))
        self.net = TimeKernelMLP(
            num_sources,
            num_coils,
            time_scale_s,
            hidden_width=config.hidden_width,
            hidden_layers=config.hidden_layers,
            activation=config.activation,
            fourier_features=config.fourier_features,
            fourier_scale=config.fourier_scale,
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(batch["offsets"], batch["times"]) @ self.whitening
