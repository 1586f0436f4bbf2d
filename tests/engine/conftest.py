"""Shared fixtures for the engine tests: tiny dict-batch data sets and models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset


class DictDataset(Dataset):
    """Items are ``{"x": x[i], "y": y[i]}``; the default collate stacks them into dict batches."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[index], "y": self.y[index]}


class XModel(nn.Module):
    """Applies ``net`` to ``batch["x"]``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(batch["x"])


def mse(outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
    return F.mse_loss(outputs, batch["y"])


@pytest.fixture
def loss_fn() -> Callable[[torch.Tensor, dict[str, Any]], torch.Tensor]:
    return mse


@pytest.fixture
def make_loader() -> Callable[..., DataLoader]:
    def _make(
        x: torch.Tensor, y: torch.Tensor, batch_size: int = 16, shuffle: bool = False, seed: int = 0
    ) -> DataLoader:
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(DictDataset(x, y), batch_size=batch_size, shuffle=shuffle, generator=generator)

    return _make


@pytest.fixture
def make_model() -> Callable[[nn.Module], XModel]:
    return XModel


@pytest.fixture
def regression() -> dict[str, torch.Tensor]:
    """Noise-free linear data y = x @ w + b with known w, b."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, 3, generator=generator)
    w = torch.tensor([[1.5], [-2.0], [0.5]])
    b = torch.tensor([0.3])
    return {"x": x, "y": x @ w + b, "w": w, "b": b}


@pytest.fixture
def tiny_batches() -> list[dict[str, torch.Tensor]]:
    """Three fixed dict batches of 4 samples (a list works as a loader)."""
    generator = torch.Generator().manual_seed(1)
    return [
        {"x": torch.randn(4, 3, generator=generator), "y": torch.randn(4, 1, generator=generator)}
        for _ in range(3)
    ]
