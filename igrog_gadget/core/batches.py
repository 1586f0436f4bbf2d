"""Fast batching of in-memory tensors (whole batches indexed at once, no per-item collation)."""

from __future__ import annotations

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler


class TensorDictDataset(Dataset):
    """Tensors of equal first dimension, indexed by a list/tensor of indices → dict of batches."""

    def __init__(self, **tensors: torch.Tensor) -> None:
        lengths = {name: int(t.shape[0]) for name, t in tensors.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"tensors must share their first dimension, got {lengths}")
        self.tensors = tensors
        self.length = next(iter(lengths.values()))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, indices) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return {name: t[index] for name, t in self.tensors.items()}


def batch_loader(dataset: TensorDictDataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """DataLoader yielding dict batches of ``batch_size`` rows (the last one may be smaller)."""
    sampler: RandomSampler | SequentialSampler
    if shuffle:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    else:
        sampler = SequentialSampler(dataset)
    return DataLoader(dataset, sampler=BatchSampler(sampler, batch_size, drop_last=False), batch_size=None)
