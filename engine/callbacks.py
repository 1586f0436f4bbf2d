"""Training callbacks, their dependency ordering, and the standard callbacks.

A callback is configuration only: everything it needs to remember during a run lives
in the ``TrainingState`` it is handed (``state.history``, ``state.metrics``,
``state.extras``...). ``dependencies`` lists class names of callbacks that must run
before this one at every event; ``order_callbacks`` turns that into an order.
"""

from __future__ import annotations

import graphlib
import heapq
import logging
import math
import sys
import time
from collections.abc import Iterable
from typing import Any

import torch
from tqdm import tqdm

from igrog_engine.inferencer import Inferencer, check_max_batches
from igrog_engine.state import StopReason, TrainingState

logger = logging.getLogger(__name__)

EVENTS: tuple[str, ...] = (
    "train_started",
    "epoch_started",
    "train_step_started",
    "train_step_ended",
    "epoch_ended",
    "train_ended",
)


class AbstractTrainingCallback:
    """Base class: six no-op event hooks; override the ones you need.

    ``dependencies`` names classes (by ``__name__``) whose instances must run before
    this callback; a subclass instance satisfies a dependency on its base class name.
    """

    dependencies: tuple[str, ...] = ()

    def train_started(self, state: TrainingState) -> None:
        """Called once before the first epoch."""

    def train_ended(self, state: TrainingState) -> None:
        """Called once at the end of training, also after a stop or an error."""

    def epoch_started(self, state: TrainingState) -> None:
        """Called at the start of each epoch."""

    def epoch_ended(self, state: TrainingState) -> None:
        """Called at the end of each epoch (also a partial one cut by a stop)."""

    def train_step_started(self, state: TrainingState) -> None:
        """Called after the batch is on the device, before the forward pass."""

    def train_step_ended(self, state: TrainingState) -> None:
        """Called after ``backward()`` and before ``optimizer.step()``: gradients may be edited."""

    def __repr__(self) -> str:
        config = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({config})"


class CallbackDependencyError(ValueError):
    """Callbacks cannot be ordered: unknown dependency, cycle or duplicate class name."""


def _class_names(callback: AbstractTrainingCallback) -> set[str]:
    return {cls.__name__ for cls in type(callback).__mro__}


def order_callbacks(callbacks: Iterable[AbstractTrainingCallback]) -> list[AbstractTrainingCallback]:
    """Order callbacks so each runs after its dependencies; ties keep the given order.

    Raises ``CallbackDependencyError`` for duplicate class names, a dependency that no
    given callback satisfies, or a dependency cycle (its members are named).
    """
    given = list(callbacks)
    names: list[str] = []
    for callback in given:
        if not isinstance(callback, AbstractTrainingCallback):
            raise TypeError(f"callbacks must be AbstractTrainingCallback instances, got {callback!r}")
        deps = type(callback).dependencies
        if isinstance(deps, str) or not all(isinstance(dep, str) for dep in deps):
            raise TypeError(
                f"{type(callback).__name__}.dependencies must be a tuple of class names, got {deps!r}"
            )
        name = type(callback).__name__
        if name in names:
            raise CallbackDependencyError(f"duplicate callback class {name!r} in {names + [name]}")
        names.append(name)

    sorter: graphlib.TopologicalSorter[int] = graphlib.TopologicalSorter()
    for index, callback in enumerate(given):
        sorter.add(index)
        for dep in type(callback).dependencies:
            providers = [i for i, other in enumerate(given) if i != index and dep in _class_names(other)]
            if not providers:
                raise CallbackDependencyError(
                    f"callback {names[index]!r} depends on {dep!r}, which is not among the given "
                    f"callbacks {names}"
                )
            sorter.add(index, *providers)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = [names[i] for i in exc.args[1]]
        raise CallbackDependencyError(f"callback dependency cycle: {' -> '.join(cycle)}") from exc

    # Kahn's algorithm picking the smallest given index among the ready nodes: stable.
    ready: list[int] = list(sorter.get_ready())
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        sorter.done(index)
        for newly_ready in sorter.get_ready():
            heapq.heappush(ready, newly_ready)
    ordered = [given[i] for i in order]
    logger.debug("callback order: %s", [type(cb).__name__ for cb in ordered])
    return ordered


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _positive_float(value: Any, name: str, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


class StepCounter(AbstractTrainingCallback):
    """Counts completed steps (``state.step``) and epochs (``state.epoch``).

    The trainer adds one automatically when none is given; the loop itself never counts.
    """

    def train_step_ended(self, state: TrainingState) -> None:
        """Count the step."""
        state.step += 1

    def epoch_ended(self, state: TrainingState) -> None:
        """Count the epoch."""
        state.epoch += 1


_BAR_KEY = "LossLogger.progress_bar"
_EPOCH_START_KEY = "LossLogger.epoch_start"
_STEP_LOSSES_KEY = "LossLogger.step_losses"


class LossLogger(AbstractTrainingCallback):
    """Records losses, logs them, and optionally shows a tqdm progress bar over steps.

    Per step: keeps the loss tensor and logs it every ``every_n_steps`` steps (``None``: never;
    the only per-step host syncs). Per epoch: appends the epoch's step losses to
    ``state.history["step_loss"]`` (one sync). Per epoch: appends the mean step loss to
    ``state.epoch_losses`` and ``state.history["train_loss"]``, sets
    ``state.metrics["train_loss"]``. The bar shows when ``progress`` is true and stderr
    is a TTY, or when ``force_progress`` is true.
    """

    dependencies = ("StepCounter",)

    def __init__(self, every_n_steps: int | None = 50, progress: bool = True, force_progress: bool = False) -> None:
        self.every_n_steps = None if every_n_steps is None else _positive_int(every_n_steps, "every_n_steps")
        self.progress = bool(progress)
        self.force_progress = bool(force_progress)

    def _show_bar(self) -> bool:
        if self.force_progress:
            return True
        isatty = getattr(sys.stderr, "isatty", None)
        return self.progress and callable(isatty) and bool(isatty())

    def train_started(self, state: TrainingState) -> None:
        """Register the loss series and open the progress bar."""
        state.history.setdefault("train_loss", [])
        state.history.setdefault("step_loss", [])
        if self._show_bar():
            state.extras[_BAR_KEY] = tqdm(
                total=state.total_steps, unit="step", file=sys.stderr, dynamic_ncols=True
            )

    def epoch_started(self, state: TrainingState) -> None:
        """Remember where this epoch's step losses start."""
        state.extras[_EPOCH_START_KEY] = len(state.history["step_loss"])
        bar = state.extras.get(_BAR_KEY)
        if bar is not None:
            bar.set_description(f"epoch {state.epoch + 1}/{state.max_epochs}")

    def train_step_ended(self, state: TrainingState) -> None:
        """Keep the step loss tensor (no host sync); log it every ``every_n_steps`` steps."""
        if state.loss_tensor is None:
            return
        state.extras.setdefault(_STEP_LOSSES_KEY, []).append(state.loss_tensor)
        logged = self.every_n_steps is not None and state.step % self.every_n_steps == 0
        if logged:
            logger.info("epoch %d step %d loss %.6g", state.epoch + 1, state.step, state.loss)
        bar = state.extras.get(_BAR_KEY)
        if bar is not None:
            bar.update(1)
            if logged:
                bar.set_postfix(loss=f"{state.loss:.4g}", refresh=False)

    def epoch_ended(self, state: TrainingState) -> None:
        """Record the epoch's step losses (one host sync) and their mean."""
        pending = state.extras.pop(_STEP_LOSSES_KEY, [])
        if pending:
            state.history["step_loss"].extend(torch.stack(pending).float().cpu().tolist())
        start = state.extras.get(_EPOCH_START_KEY, 0)
        losses = state.history["step_loss"][start:]
        if not losses:
            logger.warning("epoch %d had no training steps; no train_loss recorded", state.epoch)
            return
        mean = sum(losses) / len(losses)
        state.epoch_losses.append(mean)
        state.history["train_loss"].append(mean)
        state.metrics["train_loss"] = mean
        logger.info("epoch %d/%d train_loss %.6g", state.epoch, state.max_epochs, mean)

    def train_ended(self, state: TrainingState) -> None:
        """Close the progress bar."""
        bar = state.extras.pop(_BAR_KEY, None)
        if bar is not None:
            bar.close()
        state.extras.pop(_EPOCH_START_KEY, None)
        state.extras.pop(_STEP_LOSSES_KEY, None)  # an error's unfinished epoch


class GradientClipping(AbstractTrainingCallback):
    """Clips the global gradient norm to ``max_norm`` before the optimizer step.

    The norm before clipping goes to ``state.metrics["grad_norm"]``.
    """

    def __init__(self, max_norm: float, norm_type: float = 2.0) -> None:
        self.max_norm = _positive_float(max_norm, "max_norm")
        self.norm_type = _positive_float(norm_type, "norm_type") if norm_type != math.inf else math.inf

    def train_step_ended(self, state: TrainingState) -> None:
        """Clip the gradients in place."""
        params = [p for p in state.model.parameters() if p.grad is not None]
        if not params:
            return
        norm = torch.nn.utils.clip_grad_norm_(params, self.max_norm, norm_type=self.norm_type)
        state.metrics["grad_norm"] = norm.detach()  # a 0-d tensor: float() of it is a host sync


class Validation(AbstractTrainingCallback):
    """Validation loss every ``every_n_epochs`` completed epochs via ``Inferencer.validate``.

    Appends to ``state.history["val_loss"]`` and sets ``state.metrics["val_loss"]``.
    ``loader=None`` uses the ``val_loader`` passed to ``Trainer.fit``. ``max_batches``
    limits each validation to the first batches (partial validation).
    """

    dependencies = ("StepCounter",)

    def __init__(self, loader: Any = None, every_n_epochs: int = 1, max_batches: int | None = None) -> None:
        self.loader = loader
        self.every_n_epochs = _positive_int(every_n_epochs, "every_n_epochs")
        self.max_batches = check_max_batches(max_batches)

    def _loader(self, state: TrainingState) -> Any:
        return self.loader if self.loader is not None else state.val_loader

    def train_started(self, state: TrainingState) -> None:
        """Register the ``val_loss`` series; fail early without a loader."""
        if self._loader(state) is None:
            raise ValueError("Validation has no loader: pass one or give fit() a val_loader (got None)")
        state.history.setdefault("val_loss", [])

    def epoch_ended(self, state: TrainingState) -> None:
        """Validate when the completed epoch count is a multiple of ``every_n_epochs``."""
        if state.epoch % self.every_n_epochs != 0:
            return
        if state.loss_fn is None:
            raise ValueError("Validation needs state.loss_fn, got None")
        value = Inferencer(state.device).validate(state.model, self._loader(state), state.loss_fn, self.max_batches)
        state.history["val_loss"].append(value)
        state.metrics["val_loss"] = value
        logger.info("epoch %d/%d val_loss %.6g", state.epoch, state.max_epochs, value)


class EarlyStopping(AbstractTrainingCallback):
    """Stops when the monitored per-epoch loss has not improved for ``patience`` values.

    An improvement is a value below the best so far minus ``min_delta`` and minus
    ``min_rel_delta`` times the best (a relative plateau tolerance).
    ``monitor="val_loss"`` needs a ``Validation`` callback ordered *before* this one (list
    it first: only ``LossLogger`` is a declared dependency); otherwise ``train_started``
    raises ``ValueError``. With ``Validation(every_n_epochs>1)`` patience counts validations.
    """

    dependencies = ("LossLogger",)
    MONITORS = ("train_loss", "val_loss")

    def __init__(
        self, patience: int, min_delta: float = 0.0, monitor: str = "train_loss", min_rel_delta: float = 0.0
    ) -> None:
        self.patience = _positive_int(patience, "patience")
        self.min_delta = _positive_float(min_delta, "min_delta", allow_zero=True)
        self.min_rel_delta = _positive_float(min_rel_delta, "min_rel_delta", allow_zero=True)
        if monitor not in self.MONITORS:
            raise ValueError(f"monitor must be one of {self.MONITORS}, got {monitor!r}")
        self.monitor = monitor

    def train_started(self, state: TrainingState) -> None:
        """Check the monitored series is being recorded by a callback that runs earlier."""
        if self.monitor not in state.history:
            raise ValueError(
                f"EarlyStopping(monitor={self.monitor!r}): no {self.monitor!r} series in state.history at "
                f"train_started (have {sorted(state.history)}); "
                + (
                    "add a Validation callback listed before EarlyStopping"
                    if self.monitor == "val_loss"
                    else "add a LossLogger callback"
                )
            )

    def epoch_ended(self, state: TrainingState) -> None:
        """Request a stop once the series has plateaued."""
        values = state.history.get(self.monitor, [])
        if not values:
            return
        best = values[0]
        since_best = 0
        for value in values[1:]:
            if (math.isnan(best) and not math.isnan(value)) or value < best - self.min_delta - self.min_rel_delta * abs(best):
                best, since_best = value, 0
            else:
                since_best += 1
        if since_best >= self.patience:
            state.request_stop(
                StopReason.PLATEAU,
                f"EarlyStopping: {self.monitor} did not improve by more than {self.min_delta:g} "
                f"(+{self.min_rel_delta:g} x best) for {since_best} epoch(s) (best {best:.6g})"
            )


class TimeBudget(AbstractTrainingCallback):
    """Requests a stop once training has run ``max_seconds`` (checked at each step end)."""

    def __init__(self, max_seconds: float) -> None:
        self.max_seconds = _positive_float(max_seconds, "max_seconds")

    def train_step_ended(self, state: TrainingState) -> None:
        """Stop when over budget."""
        if state.started_at is None:
            return
        elapsed = time.monotonic() - state.started_at
        if elapsed >= self.max_seconds:
            state.request_stop(StopReason.TIME_BUDGET, f"TimeBudget: {elapsed:.3f} s elapsed >= budget {self.max_seconds:g} s")
