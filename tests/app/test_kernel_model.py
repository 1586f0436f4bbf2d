"""The kernel model's folded whitening equals the explicit product, and kernel application."""

from __future__ import annotations

import torch

from igrog_gadget.app.basic.model import BasicKernelModel
from igrog_gadget.app.common.kernels import apply_kernels
from igrog_gadget.config import ModelConfig


def test_folded_whitening_equals_net_times_whitening():
    torch.manual_seed(0)
    coils, sources = 3, 4
    size = coils * sources
    whitening = torch.randn(size, size, dtype=torch.complex64)
    model = BasicKernelModel(sources, coils, ModelConfig(hidden_width=16, hidden_layers=2), whitening)
    torch.nn.init.normal_(model.net.head.weight, std=0.1)
    torch.nn.init.normal_(model.net.head.bias, std=0.1)
    offsets = torch.randn(7, sources, 2)
    explicit = model.net(offsets) @ whitening
    folded = model({"offsets": offsets})
    assert folded.shape == (7, coils, size)
    torch.testing.assert_close(folded, explicit, rtol=1e-4, atol=1e-5)


def test_apply_kernels_is_the_per_sample_matrix_product():
    kernels = torch.randn(5, 2, 6, dtype=torch.complex64)
    sources = torch.randn(5, 6, dtype=torch.complex64)
    expected = torch.stack([kernels[i] @ sources[i] for i in range(5)])
    torch.testing.assert_close(apply_kernels(kernels, sources), expected)
