"""Batch-by-batch inference and partial validation of a model."""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from igrog_engine.device import CPU, batch_size, move_to_device, resolve_device

logger = logging.getLogger(__name__)


def check_max_batches(max_batches: int | None) -> int | None:
    """Return ``max_batches`` if it is ``None`` or an int >= 1; ``ValueError`` otherwise."""
    if max_batches is None:
        return None
    if isinstance(max_batches, bool) or not isinstance(max_batches, int) or max_batches < 1:
        raise ValueError(f"max_batches must be None or an int >= 1, got {max_batches!r}")
    return max_batches


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put ``model`` in eval mode; restore every submodule's previous train/eval flag on exit."""
    previous = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in previous:
            module.training = training


class Inferencer:
    """Applies a model to a loader's batches on one device (model must already be there).

    A batch is a tensor, a dict of tensors or a tuple/list of tensors; ``model(batch)``
    returns the outputs and ``loss_fn(outputs, batch)`` a scalar tensor.
    """

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = resolve_device(device)

    def prepare_batch(self, batch: Any) -> Any:
        """Move a batch to the inference device (the only place batches are moved)."""
        return move_to_device(batch, self.device)

    def _batches(self, loader: Iterable[Any], max_batches: int | None) -> Iterator[Any]:
        # islice stops before asking the loader for batch max_batches + 1.
        return iter(loader) if max_batches is None else itertools.islice(loader, max_batches)

    def run(self, model: torch.nn.Module, loader: Iterable[Any], max_batches: int | None = None) -> list[Any]:
        """Outputs of ``model`` for each batch (at most ``max_batches``), moved to CPU.

        Runs under ``torch.inference_mode()`` in eval mode and restores the previous
        modes afterwards. The returned tensors are inference tensors: ``clone()`` them
        outside inference mode before using them in autograd.
        """
        check_max_batches(max_batches)
        outputs: list[Any] = []
        with eval_mode(model), torch.inference_mode():
            for batch in self._batches(loader, max_batches):
                outputs.append(move_to_device(model(self.prepare_batch(batch)), CPU))
        logger.debug("inference over %d batch(es)", len(outputs))
        return outputs

    def iterate(self, model: torch.nn.Module, loader: Iterable[Any]) -> Iterator[Any]:
        """Outputs of ``model`` batch by batch, left on the inference device (streaming: the
        caller consumes each before the next is computed, so memory holds one batch).

        Each batch runs under ``torch.inference_mode()`` in eval mode; the model's modes are
        restored when the iteration ends or is abandoned.
        """
        with eval_mode(model):
            for batch in loader:
                with torch.inference_mode():
                    output = model(self.prepare_batch(batch))
                yield output

    def validate(
        self,
        model: torch.nn.Module,
        loader: Iterable[Any],
        loss_fn: Callable[[Any, Any], torch.Tensor],
        max_batches: int | None = None,
    ) -> float:
        """Mean loss over the first ``max_batches`` batches (all if ``None``), weighted by batch size."""
        check_max_batches(max_batches)
        total: torch.Tensor | None = None
        count = 0
        with eval_mode(model), torch.inference_mode():
            for batch in self._batches(loader, max_batches):
                batch = self.prepare_batch(batch)
                loss = loss_fn(model(batch), batch)
                if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                    raise ValueError(f"loss_fn must return a scalar tensor, got {loss!r}")
                size = batch_size(batch)
                weighted = loss.detach().reshape(()).to(torch.float64) * size
                total = weighted if total is None else total + weighted
                count += size
        if total is None:
            raise ValueError(f"validation loader {loader!r} yielded no batches")
        return float(total.item()) / count
