"""The trainer learns small non-MRI problems; schedulers move the learning rate as configured."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from igrog_engine import (
    AbstractTrainingCallback,
    LossLogger,
    OptimizerConfig,
    SchedulerConfig,
    TrainingState,
    Trainer,
    TrainerConfig,
)


class LrRecorder(AbstractTrainingCallback):
    """Stores the learning rate used by each step in state.extras["lrs"]."""

    def train_step_started(self, state: TrainingState) -> None:
        state.extras.setdefault("lrs", []).append(state.optimizer.param_groups[0]["lr"])


def test_mlp_fits_sine(make_loader, make_model, loss_fn) -> None:
    torch.manual_seed(0)
    x = torch.linspace(-2.0, 2.0, 256).unsqueeze(1)
    y = torch.sin(3 * x) + 0.5 * x
    model = make_model(nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1)))
    config = TrainerConfig(epochs=120, device="cpu", optimizer=OptimizerConfig("adam", {"lr": 1e-2}))
    state = Trainer(model, loss_fn, config, [LossLogger(every_n_steps=None)]).fit(
        make_loader(x, y, batch_size=32, shuffle=True)
    )
    initial = state.history["step_loss"][0]
    assert len(state.epoch_losses) == 120
    assert state.epoch_losses[-1] < initial / 10, (initial, state.epoch_losses[-1])
    assert state.epoch == 120 and state.step == 120 * 8
    assert model.training  # fit leaves the model in train mode


@pytest.mark.parametrize(
    ("optimizer", "scheduler"),
    [
        (OptimizerConfig("adam", {"lr": 0.05}), SchedulerConfig("cosine", {"eta_min": 0.0})),
        (OptimizerConfig("SGD", {"lr": 0.1, "momentum": 0.5}), SchedulerConfig()),
    ],
)
def test_linear_regression_recovers_weights(regression, make_loader, make_model, loss_fn, optimizer, scheduler) -> None:
    torch.manual_seed(0)
    linear = nn.Linear(3, 1)
    model = make_model(linear)
    config = TrainerConfig(epochs=60, device="cpu", optimizer=optimizer, scheduler=scheduler)
    Trainer(model, loss_fn, config).fit(make_loader(regression["x"], regression["y"], batch_size=32, shuffle=True))
    torch.testing.assert_close(linear.weight.detach(), regression["w"].T, atol=1e-2, rtol=0)
    torch.testing.assert_close(linear.bias.detach(), regression["b"], atol=1e-2, rtol=0)


def _fit_recording_lr(tiny_batches, make_model, loss_fn, scheduler: SchedulerConfig, epochs: int) -> TrainingState:
    model = make_model(nn.Linear(3, 1))
    config = TrainerConfig(
        epochs=epochs, device="cpu", optimizer=OptimizerConfig("sgd", {"lr": 0.1, "momentum": 0.9}), scheduler=scheduler
    )
    return Trainer(model, loss_fn, config, [LrRecorder()]).fit(tiny_batches)


def test_cosine_scheduler_steps_per_step(tiny_batches, make_model, loss_fn) -> None:
    state = _fit_recording_lr(tiny_batches, make_model, loss_fn, SchedulerConfig("cosine", {"eta_min": 0.001}), 2)
    total = 6
    expected = [0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * t / total)) / 2 for t in range(total)]
    assert state.scheduler is not None and state.scheduler.interval == "step"
    assert state.extras["lrs"] == pytest.approx(expected)
    assert state.lr == pytest.approx(0.001)


def test_step_scheduler_steps_per_epoch(tiny_batches, make_model, loss_fn) -> None:
    state = _fit_recording_lr(
        tiny_batches, make_model, loss_fn, SchedulerConfig("step", {"step_size": 1, "gamma": 0.5}), 3
    )
    assert state.scheduler is not None and state.scheduler.interval == "epoch"
    assert state.extras["lrs"] == pytest.approx([0.1] * 3 + [0.05] * 3 + [0.025] * 3)


def test_onecycle_runs_the_full_schedule(tiny_batches, make_model, loss_fn) -> None:
    state = _fit_recording_lr(tiny_batches, make_model, loss_fn, SchedulerConfig("onecycle", {"max_lr": 0.5}), 4)
    lrs = state.extras["lrs"]
    peak = lrs.index(max(lrs))
    assert 0 < peak < len(lrs) - 1
    assert max(lrs) == pytest.approx(0.5, rel=0.05)
    assert lrs[-1] < lrs[0]
