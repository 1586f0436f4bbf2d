"""Running the engine's trainer on a variant, with the settings of ``TrainingConfig``."""

from __future__ import annotations

import logging
import math
import time

import torch

from engine import (
    AbstractTrainingCallback,
    EarlyStopping,
    GradientClipping,
    LossLogger,
    OptimizerConfig,
    SchedulerConfig,
    StepCounter,
    TimeBudget,
    Trainer,
    TrainerConfig,
    TrainingState,
    Validation,
)
from igrog_gadget.config import TrainingConfig

logger = logging.getLogger(__name__)


class TimeCosineLR(AbstractTrainingCallback):
    """Cosine learning-rate decay over the training budget: time or steps, whichever runs out first.

    Progress is ``max(elapsed / max_seconds, step / total_steps)``, so a run cut short by the
    time budget still ends with an annealed learning rate.
    """

    dependencies = ("StepCounter",)

    def __init__(self, max_seconds: float, min_factor: float = 0.02) -> None:
        self.max_seconds = max_seconds
        self.min_factor = min_factor

    def train_started(self, state: TrainingState) -> None:
        state.extras["base_lrs"] = [group["lr"] for group in state.optimizer.param_groups]
        state.extras["lr_clock_start"] = time.monotonic()

    def train_step_ended(self, state: TrainingState) -> None:
        elapsed = time.monotonic() - state.extras["lr_clock_start"]
        progress = elapsed / self.max_seconds
        if state.total_steps:
            progress = max(progress, (state.step + 1) / state.total_steps)
        factor = self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        for group, base in zip(state.optimizer.param_groups, state.extras["base_lrs"]):
            group["lr"] = base * factor


class HeadRefit(AbstractTrainingCallback):
    """At the end of training, solve the model's head exactly on a set of pairs.

    The model must offer ``refit_head(batch, regularization) -> residual``; models without it
    are left alone. The residual goes to ``state.metrics["refit_loss"]``.
    """

    dependencies = ("StepCounter",)

    def __init__(self, pairs: dict[str, torch.Tensor], regularization: float) -> None:
        self.pairs = pairs
        self.regularization = regularization

    def train_ended(self, state: TrainingState) -> None:
        refit = getattr(state.model, "refit_head", None)
        if refit is None:
            logger.debug("%s has no refit_head; skipping", type(state.model).__name__)
            return
        batch = {name: tensor.to(state.device) for name, tensor in self.pairs.items()}
        started = time.monotonic()
        state.metrics["refit_loss"] = refit(batch, self.regularization)
        logger.info("head refit: loss %.4g in %.2f s", state.metrics["refit_loss"], time.monotonic() - started)


def build_trainer(
    model: torch.nn.Module,
    loss_fn: torch.nn.Module,
    config: TrainingConfig,
    device: str,
    val_loader=None,
    steps_per_epoch: int | None = None,
    refit_pairs: dict[str, torch.Tensor] | None = None,
) -> Trainer:
    """A Trainer with the standard callbacks configured by ``config``."""
    params: dict = {"lr": config.learning_rate}
    if config.weight_decay:
        params["weight_decay"] = config.weight_decay
    if config.scheduler == "cosine":
        scheduler = SchedulerConfig("cosine", {})
    elif config.scheduler == "step":
        scheduler = SchedulerConfig("step", {"step_size": max(1, config.epochs // 3), "gamma": 0.3})
    else:
        scheduler = SchedulerConfig("none", {})
    callbacks: list[AbstractTrainingCallback] = [
        StepCounter(),
        LossLogger(every_n_steps=steps_per_epoch or 100, progress=config.progress),
        TimeBudget(config.max_seconds),
    ]
    if config.scheduler == "time_cosine":
        callbacks.append(TimeCosineLR(config.max_seconds))
    if config.grad_clip > 0:
        callbacks.append(GradientClipping(config.grad_clip))
    if val_loader is not None:
        callbacks.append(Validation(val_loader, every_n_epochs=1, max_batches=4))
    if config.refit_head and refit_pairs is not None:
        callbacks.append(HeadRefit(refit_pairs, config.refit_regularization))
    if config.early_stopping_patience > 0:
        callbacks.append(EarlyStopping(config.early_stopping_patience, min_delta=0.0, monitor="train_loss"))
    trainer_config = TrainerConfig(
        epochs=config.epochs,
        device=device,
        optimizer=OptimizerConfig(config.optimizer, params),
        scheduler=scheduler,
    )
    return Trainer(model, loss_fn, trainer_config, callbacks)
