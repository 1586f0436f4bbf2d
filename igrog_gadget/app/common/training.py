"""Running the engine's trainer on a variant, with the settings of ``TrainingConfig``."""

from __future__ import annotations

import logging
import math
import threading
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


#: Held while a training or an inference changes torch's process-wide CPU thread count, so that
#: concurrent sessions of a server never undo each other's setting; others leave it alone.
TORCH_THREADS_LOCK = threading.Lock()


class CpuThreadTuning(AbstractTrainingCallback):
    """On the CPU, time a few steps with torch's threads and with one thread; keep the faster.

    Small training steps scale poorly: on a loaded machine, torch's OpenMP threads can make a
    step ten times slower than a single thread, while an idle machine gains from them. The
    choice is made once per training (steps ``warmup`` .. ``warmup + 2 * probe``, which still
    train the model) and the previous thread count is restored when training ends. torch's
    thread count is process-wide: concurrent trainings in one process share it.
    """

    dependencies = ("StepCounter",)

    def __init__(self, warmup: int = 3, probe: int = 6) -> None:
        self.warmup = warmup
        self.probe = probe

    def train_started(self, state: TrainingState) -> None:
        wanted = state.device.type == "cpu" and torch.get_num_threads() > 1
        owner = wanted and TORCH_THREADS_LOCK.acquire(blocking=False)  # another training is tuning: skip
        threads = torch.get_num_threads()
        state.extras["threads"] = {"original": threads, "times": {}, "active": owner, "owner": owner}

    def train_step_started(self, state: TrainingState) -> None:
        tuning = state.extras["threads"]
        if not tuning["active"]:
            return
        index = state.step - self.warmup
        if index == 0:
            torch.set_num_threads(tuning["original"])
        elif index == self.probe:
            torch.set_num_threads(1)
        tuning["started"] = time.perf_counter()

    def train_step_ended(self, state: TrainingState) -> None:
        tuning = state.extras["threads"]
        if not tuning["active"]:
            return
        index = state.step - self.warmup  # StepCounter has already counted this step
        if 0 <= index - 1 < 2 * self.probe:
            threads = tuning["original"] if index - 1 < self.probe else 1
            tuning["times"].setdefault(threads, []).append(time.perf_counter() - tuning["started"])
        if index == 2 * self.probe:
            median = {n: sorted(t)[len(t) // 2] for n, t in tuning["times"].items()}
            best = min(median, key=median.get)
            torch.set_num_threads(best)
            tuning["active"] = False
            state.metrics["cpu_threads"] = float(best)
            logger.info("training on %d CPU thread(s) (median step: %s)", best,
                        ", ".join(f"{n} thread(s) {1000 * t:.1f} ms" for n, t in sorted(median.items())))

    def train_ended(self, state: TrainingState) -> None:
        tuning = state.extras.get("threads")
        if tuning is not None and tuning["owner"]:
            torch.set_num_threads(tuning["original"])
            TORCH_THREADS_LOCK.release()


class Cancellation(AbstractTrainingCallback):
    """Stops training at the next step once ``event`` is set (e.g. the stream it serves is gone)."""

    dependencies = ("StepCounter",)

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def train_step_ended(self, state: TrainingState) -> None:
        if self.event.is_set():
            state.request_stop("cancelled")


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
    cancel: threading.Event | None = None,
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
        CpuThreadTuning(),
        LossLogger(every_n_steps=steps_per_epoch or 100, progress=config.progress),
        TimeBudget(config.max_seconds),
    ]
    if config.scheduler == "time_cosine":
        callbacks.append(TimeCosineLR(config.max_seconds))
    if config.grad_clip > 0:
        callbacks.append(GradientClipping(config.grad_clip))
    if val_loader is not None:
        callbacks.append(Validation(val_loader, every_n_epochs=1, max_batches=4))
    if cancel is not None:
        callbacks.append(Cancellation(cancel))
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
