"""MLP components: random Fourier features and a network from offsets to a complex kernel."""

from __future__ import annotations

import math

import torch
from torch import nn

from igrog_gadget.config import ACTIVATIONS

#: The activations of ``model.activation`` (one table, in the configuration).
_ACTIVATIONS: dict[str, type[nn.Module]] = {name: getattr(nn, module) for name, module in ACTIVATIONS.items()}


def make_activation(name: str) -> nn.Module:
    """Activation module by name (``igrog_gadget.config.ACTIVATIONS``; any case)."""
    try:
        return _ACTIVATIONS[name.lower()]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {sorted(_ACTIVATIONS)}") from None


def _linear(in_features: int, out_features: int) -> nn.Linear:
    """A linear layer left uninitialised (``ComplexKernelMLP`` initialises it from its seed)."""
    return nn.utils.skip_init(nn.Linear, in_features, out_features)


class FourierFeatures(nn.Module):
    """Random Fourier features ``[x, sin(2 pi B x), cos(2 pi B x)]`` of the input.

    References:
        Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in
        Low Dimensional Domains", NeurIPS 2020.
    """

    frequencies: torch.Tensor
    """Shape (in_features, num_features): the random frequencies B (a buffer)."""

    def __init__(self, in_features: int, num_features: int, scale: float, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("frequencies", scale * torch.randn(in_features, num_features, generator=generator))
        self.out_features = in_features + 2 * num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, in_features) → (batch, in_features + 2 * num_features)."""
        projected = 2 * math.pi * (x @ self.frequencies)
        return torch.cat([x, torch.sin(projected), torch.cos(projected)], dim=-1)


class ComplexKernelMLP(nn.Module):
    """Maps source offsets to a complex GRAPPA-like kernel.

    Input: offsets of shape (batch, sources, offset_dims) in grid units (2D: (kx, ky); 3D:
    (kx, ky, kz)), plus ``extra_inputs`` further
    features per sample when configured (e.g. the sample time). Output: kernels of shape
    (batch, coils, coils * sources), complex64, ordered so that ``kernel @ s`` with
    ``s = sources.reshape(batch, coils * sources)`` (coil-major: ``s[c * S + j]``) gives the
    target value of every coil.
    """

    def __init__(
        self,
        num_sources: int,
        num_coils: int,
        hidden_width: int = 128,
        hidden_layers: int = 3,
        activation: str = "gelu",
        fourier_features: int = 0,
        fourier_scale: float = 1.0,
        bottleneck: int = 0,
        extra_inputs: int = 0,
        seed: int = 0,
        offset_dims: int = 2,
    ) -> None:
        """``offset_dims``: coordinates per source offset (2 or 3). ``seed`` (``training.seed``) draws the initial weights and the Fourier feature
        frequencies from local generators (torch's global RNG is neither used nor changed)."""
        super().__init__()
        self.num_sources = num_sources
        self.num_coils = num_coils
        self.extra_inputs = extra_inputs
        self.offset_dims = offset_dims
        in_features = offset_dims * num_sources + extra_inputs
        layers: list[nn.Module] = []
        if fourier_features > 0:
            features = FourierFeatures(in_features, fourier_features, fourier_scale, seed=seed)
            layers.append(features)
            width_in = features.out_features
        else:
            width_in = in_features
        for _ in range(hidden_layers):
            layers += [_linear(width_in, hidden_width), make_activation(activation)]
            width_in = hidden_width
        if bottleneck > 0:  # linear feature layer whose output the head combines (see refit_head)
            layers.append(_linear(width_in, bottleneck))
            width_in = bottleneck
        self.body = nn.Sequential(*layers)
        self.feature_size = width_in
        self.head = _linear(width_in, 2 * num_coils * num_coils * num_sources)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in self.body:
                if isinstance(layer, nn.Linear):  # torch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
                    bound = 1.0 / math.sqrt(layer.in_features)
                    nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
                    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
            nn.init.zeros_(self.head.bias)
            nn.init.normal_(self.head.weight, std=1e-3, generator=generator)

    def features(self, offsets: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, sources, offset_dims) float [+ extra (batch, extra_inputs)] → (batch, feature_size): the head's input."""
        inputs = offsets.reshape(offsets.shape[0], -1)
        if self.extra_inputs:
            assert extra is not None, "this network takes extra inputs"
            inputs = torch.cat([inputs, extra.reshape(offsets.shape[0], self.extra_inputs).to(inputs.dtype)], dim=1)
        return self.body(inputs)

    def folded_head(self, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's real weight and bias with the complex ``right`` (coils*sources, coils*sources)
        folded in, so that one linear layer gives ``forward(x) @ right`` (the head is linear)."""
        coils, size = self.num_coils, self.num_coils * self.num_sources
        weight = self.head.weight.view(coils, size, 2, self.feature_size)
        bias = self.head.bias.view(coils, size, 2)
        complex_weight = torch.complex(weight[:, :, 0], weight[:, :, 1])  # (coils, size, features)
        complex_bias = torch.complex(bias[..., 0], bias[..., 1])  # (coils, size)
        folded_weight = torch.einsum("ckf,kj->cjf", complex_weight, right)
        folded_bias = complex_bias @ right
        real_weight = torch.stack([folded_weight.real, folded_weight.imag], dim=2).reshape(-1, self.feature_size)
        real_bias = torch.stack([folded_bias.real, folded_bias.imag], dim=-1).reshape(-1)
        return real_weight, real_bias

    def forward_folded(
        self, offsets: torch.Tensor, right: torch.Tensor, extra: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``forward(offsets, extra) @ right`` without the per-sample matrix product (inference)."""
        batch = offsets.shape[0]
        weight, bias = self.folded_head(right)
        out = nn.functional.linear(self.features(offsets, extra), weight, bias)
        return torch.view_as_complex(out.view(batch, self.num_coils, self.num_coils * self.num_sources, 2).contiguous())

    def forward(self, offsets: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, sources, 2) float [+ extra (batch, extra_inputs)] → (batch, coils, coils * sources) complex64."""
        batch = offsets.shape[0]
        out = self.head(self.features(offsets, extra)).view(batch, self.num_coils, self.num_coils * self.num_sources, 2)
        return torch.view_as_complex(out.contiguous())
