"""Kernels per trajectory, kept for later frames, bounded in bytes (see ``KernelCache`` for what is evicted)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch


class KernelCache:
    """Computed kernels with what applies them, keyed by (calibration key, trajectory fingerprint).

    ``max_bytes`` bounds the kernels held (a kernel set larger than that is never kept: its
    frames recompute kernels chunk by chunk instead). Eviction: a new trajectory of a
    calibration key replaces that key's older sets (least recently used first); a set of a
    key with nothing to replace is kept only if it fits beside the others. So a multi-slice
    series cycling through more slices than fit keeps the first ones instead of evicting each
    set just before it is needed again (what LRU does to a cyclic order), and a
    rotating trajectory of one slice keeps its latest set.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[tuple, tuple[Any, tuple[torch.Tensor, ...], int]] = OrderedDict()

    @property
    def nbytes(self) -> int:
        """Bytes of kernels held now."""
        return sum(size for _, _, size in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def admits(self, nbytes: int, key: tuple | None = None) -> bool:
        """Whether a kernel set of ``nbytes`` for ``key`` would be kept (``put`` would keep it)."""
        if not 0 < nbytes <= self.max_bytes:
            return False
        if key is None:
            return True
        freeable = sum(size for k, (_, _, size) in self._entries.items() if k[0] == key[0])
        return self.nbytes - freeable + nbytes <= self.max_bytes

    def get(self, key: tuple) -> tuple[Any, tuple[torch.Tensor, ...]] | None:
        """``(applier, kernels)`` for ``key`` (marked as recently used), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0], entry[1]

    def put(self, key: tuple, applier: Any, kernels: tuple[torch.Tensor, ...]) -> None:
        """Keep ``kernels`` (consecutive chunks, with the object that applies them), evicting the
        oldest entries to fit."""
        size = sum(chunk.element_size() * chunk.numel() for chunk in kernels)
        if not self.admits(size, key):
            return
        self._entries.pop(key, None)
        for old in [k for k in self._entries if k[0] == key[0]]:  # oldest first
            if self.nbytes + size <= self.max_bytes:
                break
            del self._entries[old]
        self._entries[key] = (applier, kernels, size)


def kernel_bytes(num_samples: int, coils: int, num_sources: int) -> int:
    """Bytes of complex64 kernels (num_samples, coils, coils * num_sources)."""
    return int(num_samples) * coils * coils * num_sources * 8
