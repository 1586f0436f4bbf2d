"""Generic training loop: orders events, moves batches, applies the optimizer.

Counting, logging, validation, clipping, stopping are callbacks. Event order per ``fit``::

    train_started
    for each epoch (at most config.epochs):
        epoch_started
        for each batch:
            batch = prepare_batch(batch)         # the only device move; state.batch = batch
            train_step_started
            zero_grad; outputs = model(batch); loss = loss_fn(outputs, batch); loss.backward()
            state.loss_tensor = loss.detach()    # no host sync: state.loss reads it when asked
            train_step_ended                     # after backward, BEFORE optimizer.step()
            optimizer.step(); per-step scheduler step; state.batch = None
            stop if state.stop_requested or state.step >= config.max_steps
        epoch_ended                              # also for an epoch cut short by a stop
        per-epoch scheduler step
    train_ended                                  # always: after a stop, and after an error
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from igrog_engine.callbacks import AbstractTrainingCallback, StepCounter, Validation, order_callbacks
from igrog_engine.device import move_to_device, resolve_device
from igrog_engine.optim import (
    OPTIMIZERS,
    SCHEDULERS,
    OptimizerConfig,
    SchedulerConfig,
    build_optimizer,
    build_scheduler,
    normalize_name,
)
from igrog_engine.state import StopReason, TrainingState

logger = logging.getLogger(__name__)


@dataclass
class TrainerConfig:
    """Run length, device (``auto``, ``cpu``, ``cuda``, ``cuda:N``), optimizer and scheduler."""

    epochs: int = 10
    device: str = "auto"
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    max_steps: int | None = None

    def validate(self) -> TrainerConfig:
        """Check every field; raise ``ValueError`` naming the field and the value. Returns self."""
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"TrainerConfig.epochs must be an int >= 1, got {self.epochs!r}")
        if not isinstance(self.device, (str, torch.device)) or not str(self.device).strip():
            raise ValueError(f"TrainerConfig.device must be a non-empty str, got {self.device!r}")
        if self.max_steps is not None and (
            isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int) or self.max_steps < 1
        ):
            raise ValueError(f"TrainerConfig.max_steps must be None or an int >= 1, got {self.max_steps!r}")
        if not isinstance(self.optimizer, OptimizerConfig):
            raise ValueError(f"TrainerConfig.optimizer must be an OptimizerConfig, got {self.optimizer!r}")
        if not isinstance(self.scheduler, SchedulerConfig):
            raise ValueError(f"TrainerConfig.scheduler must be a SchedulerConfig, got {self.scheduler!r}")
        for kind, cfg, known in (("optimizer", self.optimizer, OPTIMIZERS), ("scheduler", self.scheduler, SCHEDULERS)):
            try:
                normalize_name(cfg.name, known, kind)
            except ValueError as exc:
                raise ValueError(f"TrainerConfig.{kind}.name: {exc}") from exc
            if not isinstance(cfg.params, dict):
                raise ValueError(f"TrainerConfig.{kind}.params must be a dict, got {cfg.params!r}")
        return self


class Trainer:
    """Trains ``model`` with ``loss_fn(model(batch), batch)``; see the module docstring for events.

    Callbacks are ordered by their dependencies at construction (``CallbackDependencyError``
    raised here). If no ``StepCounter`` is given one is added first automatically, since
    ``state.step``/``state.epoch`` and ``max_steps`` rely on it. The optimizer is built at
    construction and kept across ``fit`` calls; the scheduler is built per ``fit``.
    The model is left in train mode after ``fit``.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: Callable[[Any, Any], torch.Tensor],
        config: TrainerConfig | None = None,
        callbacks: Sequence[AbstractTrainingCallback] = (),
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {loss_fn!r}")
        config = TrainerConfig() if config is None else config
        if not isinstance(config, TrainerConfig):
            raise TypeError(f"config must be a TrainerConfig, got {type(config).__name__}")
        self.config = config.validate()
        self.model = model
        self.loss_fn = loss_fn
        self.device = resolve_device(config.device)
        given = list(callbacks)
        if not any(isinstance(cb, StepCounter) for cb in given):
            logger.debug("no StepCounter given; adding one")
            given.insert(0, StepCounter())
        self.callbacks: tuple[AbstractTrainingCallback, ...] = tuple(order_callbacks(given))
        self.optimizer = build_optimizer(config.optimizer, model.parameters())
        self.state: TrainingState | None = None

    def prepare_batch(self, batch: Any) -> Any:
        """Move a batch to the training device (the only place batches are moved)."""
        return move_to_device(batch, self.device)

    def _total_steps(self, train_loader: Any) -> int | None:
        try:
            per_epoch: int | None = len(train_loader)
        except TypeError:
            per_epoch = None
        if per_epoch == 0:
            raise ValueError(f"train_loader {train_loader!r} is empty (len 0)")
        total = None if per_epoch is None else per_epoch * self.config.epochs
        if self.config.max_steps is not None:
            total = self.config.max_steps if total is None else min(total, self.config.max_steps)
        return total

    def _should_stop(self, state: TrainingState) -> bool:
        if state.stop_requested:
            return True
        if self.config.max_steps is not None and state.step >= self.config.max_steps:
            state.request_stop(StopReason.MAX_STEPS, f"max_steps={self.config.max_steps} reached")
            return True
        return False

    @staticmethod
    def _fire(event: str, callbacks: Sequence[AbstractTrainingCallback], state: TrainingState) -> None:
        for callback in callbacks:
            getattr(callback, event)(state)

    def fit(self, train_loader: Any, val_loader: Any = None) -> TrainingState:
        """Train on ``train_loader``; return the final ``TrainingState`` (also ``self.state``).

        With ``val_loader`` and no ``Validation`` callback, a ``Validation(val_loader)``
        (every epoch) is added for this run.
        """
        callbacks = self.callbacks
        if val_loader is not None and not any(isinstance(cb, Validation) for cb in callbacks):
            callbacks = tuple(order_callbacks([Validation(val_loader), *callbacks]))
        self.model.to(self.device)
        self.model.train()
        total_steps = self._total_steps(train_loader)
        scheduler = build_scheduler(self.config.scheduler, self.optimizer, total_steps)
        state = TrainingState(
            model=self.model,
            optimizer=self.optimizer,
            scheduler=scheduler,
            loss_fn=self.loss_fn,
            device=self.device,
            max_epochs=self.config.epochs,
            max_steps=self.config.max_steps,
            total_steps=total_steps,
            train_loader=train_loader,
            val_loader=val_loader,
            started_at=time.monotonic(),
        )
        self.state = state
        logger.info(
            "training on %s for %d epoch(s), %s step(s), callbacks %s",
            self.device, self.config.epochs, total_steps, [type(cb).__name__ for cb in callbacks],
        )
        completed = False
        try:
            self._fire("train_started", callbacks, state)
            self._run_epochs(state, callbacks, train_loader)
            completed = True
        finally:
            state.batch = None
            state.update_elapsed()
            if completed:
                self._fire("train_ended", callbacks, state)
            else:
                for callback in callbacks:
                    try:
                        callback.train_ended(state)
                    except Exception:  # the original error is already propagating
                        logger.exception("%s.train_ended failed after a training error", type(callback).__name__)
        logger.info(
            "training ended after %d epoch(s), %d step(s), %.2f s: %s",
            state.epoch, state.step, state.elapsed_s, state.stop_detail,
        )
        return state

    def _run_epochs(
        self, state: TrainingState, callbacks: Sequence[AbstractTrainingCallback], train_loader: Any
    ) -> None:
        scheduler = state.scheduler
        for _ in range(self.config.epochs):
            if self._should_stop(state):
                return
            self._fire("epoch_started", callbacks, state)
            if not state.stop_requested:
                for batch in train_loader:
                    self._train_step(state, callbacks, batch)
                    if self._should_stop(state):
                        break
            self._fire("epoch_ended", callbacks, state)
            if scheduler is not None and scheduler.interval == "epoch":
                scheduler.step()
            if self._should_stop(state):
                return
        if state.stop_reason is None:
            state.stop_reason, state.stop_detail = StopReason.MAX_EPOCHS, f"max_epochs={self.config.epochs} reached"

    def _train_step(self, state: TrainingState, callbacks: Sequence[AbstractTrainingCallback], batch: Any) -> None:
        batch = self.prepare_batch(batch)
        state.batch = batch
        self._fire("train_step_started", callbacks, state)
        self.optimizer.zero_grad(set_to_none=True)
        outputs = self.model(batch)
        loss = self.loss_fn(outputs, batch)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError(f"loss_fn must return a scalar tensor, got {loss!r}")
        loss.backward()
        state.loss_tensor = loss.detach()  # no .item(): a GPU step never waits for the host
        state.update_elapsed()
        self._fire("train_step_ended", callbacks, state)
        self.optimizer.step()
        if state.scheduler is not None and state.scheduler.interval == "step":
            state.scheduler.step()
        state.batch = None
