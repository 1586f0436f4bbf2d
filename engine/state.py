"""Mutable training state shared by the trainer loop and the callbacks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from igrog_engine.optim import SchedulerHandle

logger = logging.getLogger(__name__)


class StopReason(str, Enum):
    """Why a training ended (``TrainingState.stop_reason``; the details are in ``stop_detail``)."""

    MAX_STEPS = "max_steps"
    """The step count was reached (deterministic)."""
    MAX_EPOCHS = "max_epochs"
    """Every epoch ran (deterministic)."""
    PLATEAU = "plateau"
    """Early stopping: the monitored loss stopped improving (deterministic)."""
    TIME_BUDGET = "time_budget"
    """A time budget ran out: the result depends on the machine's speed."""
    CANCELLED = "cancelled"
    """Stopped from outside (the stream it served is gone)."""


@dataclass
class TrainingState:
    """Everything a training run knows; the trainer creates one per ``fit``.

    ``epoch`` and ``step`` count *completed* epochs/steps and are maintained by the
    ``StepCounter`` callback, not by the loop. ``history`` holds per-epoch series
    (``"train_loss"`` written by ``LossLogger``, ``"val_loss"`` by ``Validation``) plus
    the per-step ``"step_loss"`` series (filled at each epoch's end: no host sync per step).
    Callbacks may add entries to ``extras``.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer | None = None
    scheduler: SchedulerHandle | None = None
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    epoch: int = 0
    step: int = 0
    max_epochs: int = 0
    max_steps: int | None = None
    total_steps: int | None = None
    train_loader: Any = None
    val_loader: Any = None
    batch: Any = None
    loss_tensor: torch.Tensor | None = None
    """The last step's loss, a detached 0-d tensor on the training device (no host sync per step)."""
    epoch_losses: list[float] = field(default_factory=list)
    history: dict[str, list[float]] = field(default_factory=dict)
    stop_requested: bool = False
    stop_reason: StopReason | None = None
    stop_detail: str = ""
    """The stop in words (e.g. which series plateaued at which value)."""
    metrics: dict[str, float] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    elapsed_s: float = 0.0

    def request_stop(self, reason: StopReason, detail: str = "") -> None:
        """Ask the loop to stop after the current step; the first reason given is kept."""
        if not self.stop_requested:
            self.stop_requested = True
            self.stop_reason = reason
            self.stop_detail = detail or reason.value
            logger.info("stop requested at epoch %d step %d: %s", self.epoch, self.step, self.stop_detail)

    def update_elapsed(self) -> float:
        """Refresh ``elapsed_s`` from ``started_at`` (a ``time.monotonic()`` value) and return it."""
        if self.started_at is not None:
            self.elapsed_s = time.monotonic() - self.started_at
        return self.elapsed_s

    @property
    def loss(self) -> float | None:
        """The last step's loss as a float (reading it waits for the device: a host sync)."""
        return None if self.loss_tensor is None else float(self.loss_tensor)

    @property
    def lr(self) -> float | None:
        """Learning rate of the optimizer's first parameter group, if any."""
        if self.optimizer is None or not self.optimizer.param_groups:
            return None
        return float(self.optimizer.param_groups[0]["lr"])
