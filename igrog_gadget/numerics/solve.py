"""Conjugate gradients for Hermitian positive (semi-)definite normal equations, on numpy arrays
or torch tensors (a tensor stays on its device; one implementation for both)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "device")


def conjugate_gradients(
    normal: Callable[[Any], Any],
    rhs: Any,
    iterations: int,
    stop: Callable[[Any], bool],
    x0: Any = None,
) -> Any:
    """Solve ``normal(x) = rhs`` by at most ``iterations`` CG steps from ``x0`` (default 0).

    ``stop(rr)`` is asked before each step with the squared residual norm ``rr`` (a real
    scalar of the arrays' backend) and ends the iteration when true.
    """
    tensor = _is_tensor(rhs)
    if tensor:
        import torch

        def dot(a: Any, b: Any) -> Any:
            return torch.vdot(a.flatten(), b.flatten()).real

        def at_least_tiny(value: Any) -> Any:
            return torch.clamp(value, min=1e-30)

    else:

        def dot(a: Any, b: Any) -> Any:
            return np.vdot(a, b).real

        def at_least_tiny(value: Any) -> Any:
            return max(value, 1e-30)

    if x0 is None:
        x = torch.zeros_like(rhs) if tensor else np.zeros_like(rhs)
        residual = rhs.clone() if tensor else rhs.copy()
    else:
        x = x0
        residual = rhs - normal(x)
    direction = residual.clone() if tensor else residual.copy()
    rr = dot(residual, residual)
    for _ in range(iterations):
        if stop(rr):
            break
        a_dir = normal(direction)
        alpha = rr / at_least_tiny(dot(direction, a_dir))
        x = x + alpha * direction
        residual = residual - alpha * a_dir
        rr_new = dot(residual, residual)
        direction = residual + (rr_new / at_least_tiny(rr)) * direction
        rr = rr_new
    return x
