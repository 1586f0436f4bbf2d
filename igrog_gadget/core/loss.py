"""The loss every variant shares: error of the kernel-predicted grid value."""

from __future__ import annotations

import torch
from torch import nn

from igrog_gadget.core.kernels import apply_kernels


class KernelPredictionLoss(nn.Module):
    """Mean squared magnitude of ``kernel @ sources - target``.

    ``kernels``: (batch, coils, coils * sources) complex, the model's kernels for the batch's
    ``whitened_sources`` (training pairs: see ``KernelModel``) or, without them, for its raw
    ``sources``, (batch, coils * sources) complex; ``batch["targets"]``: (batch, coils) complex.
    """

    def forward(self, kernels: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        sources = batch["whitened_sources"] if "whitened_sources" in batch else batch["sources"]
        predicted = apply_kernels(kernels, sources)
        return (predicted - batch["targets"]).abs().square().mean()
