"""Device resolution and the single helper that moves batches between devices."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import torch

logger = logging.getLogger(__name__)

_CUDA_PATTERN = re.compile(r"^cuda(?::(\d+))?$")
CPU = torch.device("cpu")


def resolve_device(name: str | torch.device) -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` into a ``torch.device``.

    ``"auto"`` picks CUDA when available, else CPU. Unknown names, CUDA when it is
    unavailable, or a CUDA index past the visible devices raise ``ValueError``.
    """
    if isinstance(name, torch.device):
        if name.type == "cpu":
            return CPU
        name = str(name)
    if not isinstance(name, str):
        raise TypeError(f"device must be a str or torch.device, got {type(name).__name__}: {name!r}")
    key = name.strip().lower()
    if key == "auto":
        device = torch.device("cuda") if torch.cuda.is_available() else CPU
        logger.debug("device 'auto' resolved to %s", device)
        return device
    if key == "cpu":
        return CPU
    match = _CUDA_PATTERN.match(key)
    if match is None:
        raise ValueError(f"unknown device {name!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    if match.group(1) is None:
        return torch.device("cuda")
    index = int(match.group(1))
    count = torch.cuda.device_count()
    if index >= count:
        raise ValueError(f"device {name!r} requested but only {count} CUDA device(s) are visible")
    return torch.device("cuda", index)


def move_to_device(obj: Any, device: torch.device) -> Any:
    """Recursively move tensors in ``obj`` (tensor, mapping, tuple, list) to ``device``.

    Non-tensor leaves (strings, numbers, metadata) are returned unchanged; mappings come
    back as plain dicts, named tuples keep their type.
    """
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=device.type == "cuda" and obj.device.type == "cpu")
    if isinstance(obj, Mapping):
        return {key: move_to_device(value, device) for key, value in obj.items()}
    if isinstance(obj, tuple):
        moved = [move_to_device(item, device) for item in obj]
        if hasattr(obj, "_fields"):  # named tuple
            return type(obj)(*moved)
        return tuple(moved)
    if isinstance(obj, list):
        return [move_to_device(item, device) for item in obj]
    return obj


def batch_size(batch: Any) -> int:
    """Leading dimension of the first tensor (with ``ndim >= 1``) found in ``batch``; 1 if none."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim >= 1 else 1
    items: list[Any]
    if isinstance(batch, Mapping):
        items = list(batch.values())
    elif isinstance(batch, (tuple, list)):
        items = list(batch)
    else:
        return 1
    for item in items:
        if isinstance(item, torch.Tensor) and item.ndim >= 1:
            return int(item.shape[0])
    for item in items:
        if isinstance(item, (Mapping, tuple, list)):
            return batch_size(item)
    return 1
