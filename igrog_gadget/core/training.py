"""Running the engine's trainer on a variant, with the settings of ``TrainingConfig``."""

from __future__ import annotations

import logging
import threading
import time

import torch

from igrog_engine import (
    AbstractTrainingCallback,
    EarlyStopping,
    GradientClipping,
    LossLogger,
    OptimizerConfig,
    SchedulerConfig,
    StepCounter,
    StopReason,
    TimeBudget,
    Trainer,
    TrainerConfig,
    TrainingState,
    Validation,
)
from igrog_gadget.config import TrainingConfig

logger = logging.getLogger(__name__)

#: Optimizers run with ``fused=True`` (torch's fused implementation; same update rule).
FUSED_OPTIMIZERS = ("adam", "adamw")


class SafetyTimeCap(TimeBudget):
    """``TimeBudget`` used as a safety cap: when it stops training, the result depends on the
    machine's speed, so it says so in the log (deterministic training ends on its step count
    or a plateau of the validation loss long before)."""

    def train_step_ended(self, state: TrainingState) -> None:
        super().train_step_ended(state)
        if state.stop_requested and state.stop_reason is StopReason.TIME_BUDGET:
            logger.warning(
                "training stopped by the safety time cap training.max_seconds = %g s after %d steps: "
                "the result now depends on the machine's speed; raise the cap or lower training.max_steps",
                self.max_seconds, state.step,
            )


class Cancellation(AbstractTrainingCallback):
    """Stops training at the next step once ``event`` is set (e.g. the stream it serves is gone)."""

    dependencies = ("StepCounter",)

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def train_step_ended(self, state: TrainingState) -> None:
        if self.event.is_set():
            state.request_stop(StopReason.CANCELLED)


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


def scheduler_config(config: TrainingConfig) -> SchedulerConfig:
    """The engine's scheduler for ``training.scheduler`` and ``[training.scheduler_params]``
    (validated by the configuration; unset parameters take their defaults)."""
    params = config.scheduler_settings()
    if config.scheduler == "cosine":
        return SchedulerConfig("cosine", {"eta_min": config.learning_rate * params["min_lr_ratio"]})
    if config.scheduler == "step":
        step_size = params["step_size"] or max(1, config.epochs // 3)
        return SchedulerConfig("step", {"step_size": step_size, "gamma": params["gamma"]})
    return SchedulerConfig("none", {})


def build_trainer(
    model: torch.nn.Module,
    loss_fn: torch.nn.Module,
    config: TrainingConfig,
    device: str,
    val_loader=None,
    steps_per_epoch: int | None = None,
    refit_pairs: dict[str, torch.Tensor] | None = None,
    cancel: threading.Event | None = None,
    max_steps: int | None = None,
) -> Trainer:
    """A Trainer with the standard callbacks configured by ``config``.

    Training is deterministic: it runs ``max_steps`` optimizer steps (default
    ``config.max_steps``; the cosine schedule anneals over them) or stops earlier when the
    validation loss has not improved by ``plateau_tolerance`` (relative) for
    ``plateau_patience`` epochs. ``config.max_seconds`` is only a safety cap.
    """
    steps = max_steps or config.max_steps
    params: dict = {"lr": config.learning_rate}
    if config.weight_decay:
        params["weight_decay"] = config.weight_decay
    if config.optimizer in FUSED_OPTIMIZERS:
        params["fused"] = True  # one kernel per step for all parameters (CPU and CUDA): a CPU step of 256 pairs 5.2 -> 4.4 ms
    scheduler = scheduler_config(config)
    callbacks: list[AbstractTrainingCallback] = [
        StepCounter(),
        LossLogger(every_n_steps=steps_per_epoch or 100, progress=config.progress),
        SafetyTimeCap(config.max_seconds),
    ]
    if config.grad_clip > 0:
        callbacks.append(GradientClipping(config.grad_clip))
    if val_loader is not None:
        callbacks.append(Validation(val_loader, every_n_epochs=1, max_batches=4))
        if config.plateau_patience > 0:
            callbacks.append(
                EarlyStopping(config.plateau_patience, monitor="val_loss", min_rel_delta=config.plateau_tolerance)
            )
    if cancel is not None:
        callbacks.append(Cancellation(cancel))
    if config.refit_head and refit_pairs is not None:
        callbacks.append(HeadRefit(refit_pairs, config.refit_regularization))
    trainer_config = TrainerConfig(
        epochs=config.epochs,
        device=device,
        optimizer=OptimizerConfig(config.optimizer, params),
        scheduler=scheduler,
        max_steps=steps,
    )
    return Trainer(model, loss_fn, trainer_config, callbacks)


def held_out_nrmse(model: torch.nn.Module, loader, loss_fn: torch.nn.Module, inferencer) -> float:
    """Estimated gridding error: ``sqrt(mean loss / mean |target|^2)`` over held-out pairs.

    ``loss_fn(kernels, batch)`` is the variant's mean squared prediction error; the pairs'
    ``batch["targets"]`` (pairs, coils) give the signal power. A relative k-space error of the
    kernels on pairs the training never saw (noise augmentation included).
    """
    error = inferencer.validate(model, loader, loss_fn)
    power, count = 0.0, 0
    for batch in loader:
        targets = batch["targets"]
        power += float(targets.abs().square().mean()) * targets.shape[0]
        count += targets.shape[0]
    return float((error / max(power / max(count, 1), 1e-30)) ** 0.5)


def load_training_modules() -> None:
    """Build (and drop) a small kernel model and its trainer, so that the modules torch imports
    on a first model and optimizer (``torch._dynamo``, ``torch.fx``'s symbolic shapes: about
    1 s) are loaded now, e.g. when a server starts, not during its first scan's training."""
    from igrog_gadget.core.kernel_model import KernelModel
    from igrog_gadget.core.loss import KernelPredictionLoss
    from igrog_gadget.config import ModelConfig

    config = TrainingConfig()
    build_trainer(KernelModel(1, 1, ModelConfig(hidden_width=1, hidden_layers=1)), KernelPredictionLoss(), config, "cpu")
