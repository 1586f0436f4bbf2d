"""Callback event order, dependency ordering, and the standard callbacks."""

from __future__ import annotations

import itertools
from unittest.mock import Mock, call

import pytest
import torch
from torch import nn

from igrog_engine import (
    AbstractTrainingCallback,
    CallbackDependencyError,
    EarlyStopping,
    GradientClipping,
    Inferencer,
    LossLogger,
    OptimizerConfig,
    StepCounter,
    StopReason,
    TimeBudget,
    Trainer,
    TrainerConfig,
    TrainingState,
    Validation,
    order_callbacks,
)

CPU_SGD = dict(device="cpu", optimizer=OptimizerConfig("sgd", {"lr": 0.01}))


def make_callback(name: str, dependencies: tuple[str, ...] = ()) -> AbstractTrainingCallback:
    """An instance of a fresh callback class called ``name``."""
    return type(name, (AbstractTrainingCallback,), {"dependencies": tuple(dependencies)})()


def names(callbacks) -> list[str]:
    return [type(cb).__name__ for cb in callbacks]


class Recorder(AbstractTrainingCallback):
    """Forwards every event, with (epoch, step), to a mock sink."""

    dependencies = ("StepCounter",)

    def __init__(self, sink: Mock) -> None:
        self.sink = sink

    def train_started(self, state: TrainingState) -> None:
        self.sink.train_started(state.epoch, state.step)

    def train_ended(self, state: TrainingState) -> None:
        self.sink.train_ended(state.epoch, state.step)

    def epoch_started(self, state: TrainingState) -> None:
        self.sink.epoch_started(state.epoch, state.step)

    def epoch_ended(self, state: TrainingState) -> None:
        self.sink.epoch_ended(state.epoch, state.step)

    def train_step_started(self, state: TrainingState) -> None:
        self.sink.train_step_started(state.epoch, state.step)

    def train_step_ended(self, state: TrainingState) -> None:
        self.sink.train_step_ended(state.epoch, state.step)


def test_event_order_two_epochs_three_batches(tiny_batches, make_model, loss_fn) -> None:
    sink = Mock()
    trainer = Trainer(make_model(nn.Linear(3, 1)), loss_fn, TrainerConfig(epochs=2, **CPU_SGD), [Recorder(sink)])
    trainer.fit(tiny_batches)
    expected = [call.train_started(0, 0)]
    step = 0
    for epoch in range(2):
        expected.append(call.epoch_started(epoch, step))
        for _ in range(3):
            expected.append(call.train_step_started(epoch, step))
            step += 1  # StepCounter runs before the recorder
            expected.append(call.train_step_ended(epoch, step))
        expected.append(call.epoch_ended(epoch + 1, step))
    expected.append(call.train_ended(2, 6))
    assert sink.mock_calls == expected


class StepProbe(AbstractTrainingCallback):
    """Checks train_step_ended sees gradients and pre-step parameters."""

    def train_step_started(self, state: TrainingState) -> None:
        state.extras["before"] = [p.detach().clone() for p in state.model.parameters()]
        state.extras["batch_seen"] = state.batch is not None

    def train_step_ended(self, state: TrainingState) -> None:
        params = list(state.model.parameters())
        state.extras.setdefault("checks", []).append(
            all(p.grad is not None for p in params)
            and all(torch.equal(p, b) for p, b in zip(params, state.extras["before"]))
            and state.loss_tensor is not None
            and state.loss == pytest.approx(float(state.loss_tensor))
        )


def test_step_ended_fires_after_backward_before_optimizer_step(tiny_batches, make_model, loss_fn) -> None:
    model = make_model(nn.Linear(3, 1))
    start = [p.detach().clone() for p in model.parameters()]
    state = Trainer(model, loss_fn, TrainerConfig(epochs=1, **CPU_SGD), [StepProbe()]).fit(tiny_batches)
    assert state.extras["checks"] == [True, True, True]
    assert state.extras["batch_seen"] and state.batch is None
    assert not all(torch.equal(p, s) for p, s in zip(model.parameters(), start))


class Boom(AbstractTrainingCallback):
    def train_step_started(self, state: TrainingState) -> None:
        raise RuntimeError("boom")


def test_train_ended_fires_after_an_error(tiny_batches, make_model, loss_fn) -> None:
    sink = Mock()
    callbacks = [Recorder(sink), Boom()]
    trainer = Trainer(make_model(nn.Linear(3, 1)), loss_fn, TrainerConfig(epochs=2, **CPU_SGD), callbacks)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(tiny_batches)
    assert sink.mock_calls[-1] == call.train_ended(0, 0)


# ---------------------------------------------------------------- ordering


def test_topological_order_honours_dependencies_for_any_given_order() -> None:
    for permutation in itertools.permutations(["A", "B", "C", "X"]):
        deps = {"A": (), "B": ("A",), "C": ("B", "A"), "X": ()}
        ordered = names(order_callbacks([make_callback(n, deps[n]) for n in permutation]))
        assert ordered.index("A") < ordered.index("B") < ordered.index("C"), (permutation, ordered)


def test_order_is_stable_for_independent_callbacks() -> None:
    given = [make_callback("Y"), make_callback("C", ("B",)), make_callback("X"), make_callback("B")]
    assert names(order_callbacks(given)) == ["Y", "X", "B", "C"]


def test_dependency_on_base_class_name_is_satisfied_by_subclass() -> None:
    class MyCounter(StepCounter):
        pass

    ordered = order_callbacks([LossLogger(progress=False), MyCounter()])
    assert names(ordered) == ["MyCounter", "LossLogger"]


def test_trainer_orders_callbacks_and_adds_step_counter(make_model, loss_fn) -> None:
    given = [make_callback("C", ("B",)), make_callback("B", ("A",)), make_callback("A")]
    trainer = Trainer(make_model(nn.Linear(3, 1)), loss_fn, TrainerConfig(**CPU_SGD), given)
    assert names(trainer.callbacks) == ["StepCounter", "A", "B", "C"]
    trainer = Trainer(make_model(nn.Linear(3, 1)), loss_fn, TrainerConfig(**CPU_SGD), [LossLogger(), StepCounter()])
    assert names(trainer.callbacks) == ["StepCounter", "LossLogger"]


def test_unknown_dependency_raises_at_construction(make_model, loss_fn) -> None:
    with pytest.raises(CallbackDependencyError, match=r"'Needy'.*'Missing'"):
        Trainer(make_model(nn.Linear(3, 1)), loss_fn, TrainerConfig(**CPU_SGD), [make_callback("Needy", ("Missing",))])


def test_cycle_raises_at_construction_naming_members(make_model, loss_fn) -> None:
    cycle = [make_callback("Ping", ("Pong",)), make_callback("Pong", ("Ping",)), make_callback("Free")]
    with pytest.raises(CallbackDependencyError, match="cycle") as info:
        Trainer(make_model(nn.Linear(3, 1)), loss_fn, TrainerConfig(**CPU_SGD), cycle)
    assert "Ping" in str(info.value) and "Pong" in str(info.value) and "Free" not in str(info.value)


def test_duplicate_class_names_raise() -> None:
    with pytest.raises(CallbackDependencyError, match="duplicate.*StepCounter"):
        order_callbacks([StepCounter(), StepCounter()])


def test_non_callback_and_string_dependencies_raise_type_error() -> None:
    with pytest.raises(TypeError, match="object"):
        order_callbacks([object()])  # type: ignore[list-item]
    bad = type("Bad", (AbstractTrainingCallback,), {"dependencies": "StepCounter"})()
    with pytest.raises(TypeError, match="tuple of class names"):
        order_callbacks([bad])


# ---------------------------------------------------------------- standard callbacks


class GradNormProbe(AbstractTrainingCallback):
    """Records the gradient norm the optimizer will see, after clipping."""

    dependencies = ("GradientClipping",)

    def train_step_ended(self, state: TrainingState) -> None:
        norm = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in state.model.parameters()]))
        state.extras.setdefault("clipped", []).append(float(norm))
        state.extras.setdefault("raw", []).append(state.metrics["grad_norm"])


def test_gradient_clipping_bounds_the_norm(tiny_batches, make_model) -> None:
    def big_loss(outputs, batch):
        return 1000.0 * torch.nn.functional.mse_loss(outputs, batch["y"])

    callbacks = [GradNormProbe(), GradientClipping(max_norm=0.5)]  # the probe is listed first on purpose
    state = Trainer(make_model(nn.Linear(3, 1)), big_loss, TrainerConfig(epochs=2, **CPU_SGD), callbacks).fit(
        tiny_batches
    )
    assert len(state.extras["clipped"]) == 6
    assert max(state.extras["clipped"]) <= 0.5 * (1 + 1e-5)
    assert min(state.extras["raw"]) > 0.5


def test_loss_logger_records_means_and_closes_bar(tiny_batches, make_model, loss_fn, capsys) -> None:
    logger_cb = LossLogger(every_n_steps=2, force_progress=True)
    state = Trainer(make_model(nn.Linear(3, 1)), loss_fn, TrainerConfig(epochs=3, **CPU_SGD), [logger_cb]).fit(
        tiny_batches
    )
    steps = state.history["step_loss"]
    assert len(steps) == 9
    expected = [sum(steps[i : i + 3]) / 3 for i in (0, 3, 6)]
    assert state.epoch_losses == pytest.approx(expected)
    assert state.history["train_loss"] == pytest.approx(expected)
    assert state.metrics["train_loss"] == pytest.approx(expected[-1])
    assert not any(key.startswith("LossLogger") for key in state.extras)
    assert "9/9" in capsys.readouterr().err


def test_early_stopping_stops_a_plateau(tiny_batches, make_model, loss_fn) -> None:
    config = TrainerConfig(epochs=50, device="cpu", optimizer=OptimizerConfig("sgd", {"lr": 0.0}))
    state = Trainer(make_model(nn.Linear(3, 1)), loss_fn, config, [EarlyStopping(patience=3), LossLogger()]).fit(
        tiny_batches
    )
    assert state.epoch == 4 and state.step == 12
    assert state.stop_requested and state.stop_reason is StopReason.PLATEAU and "train_loss" in state.stop_detail


def test_early_stopping_lets_an_improving_run_finish(regression, make_loader, make_model, loss_fn) -> None:
    config = TrainerConfig(epochs=5, device="cpu", optimizer=OptimizerConfig("sgd", {"lr": 0.05}))
    loader = make_loader(regression["x"], regression["y"], batch_size=64)
    state = Trainer(make_model(nn.Linear(3, 1)), loss_fn, config, [LossLogger(), EarlyStopping(2, 1e-6)]).fit(loader)
    assert state.epoch == 5 and not state.stop_requested and state.stop_reason is StopReason.MAX_EPOCHS


def test_early_stopping_on_val_loss(tiny_batches, make_model, loss_fn) -> None:
    config = TrainerConfig(epochs=50, device="cpu", optimizer=OptimizerConfig("sgd", {"lr": 0.0}))
    callbacks = [Validation(tiny_batches[:1]), EarlyStopping(patience=2, monitor="val_loss"), LossLogger()]
    state = Trainer(make_model(nn.Linear(3, 1)), loss_fn, config, callbacks).fit(tiny_batches)
    assert state.epoch == 3 and state.stop_reason is StopReason.PLATEAU and "val_loss" in state.stop_detail
    assert len(state.history["val_loss"]) == 3


def test_early_stopping_on_val_loss_without_validation_raises(tiny_batches, make_model, loss_fn) -> None:
    callbacks = [EarlyStopping(2, monitor="val_loss"), LossLogger()]
    trainer = Trainer(make_model(nn.Linear(3, 1)), loss_fn, TrainerConfig(epochs=2, **CPU_SGD), callbacks)
    with pytest.raises(ValueError, match="Validation"):
        trainer.fit(tiny_batches)


def test_time_budget_stops(tiny_batches, make_model, loss_fn) -> None:
    config = TrainerConfig(epochs=1000, **CPU_SGD)
    state = Trainer(make_model(nn.Linear(3, 1)), loss_fn, config, [TimeBudget(max_seconds=1e-9)]).fit(tiny_batches)
    assert state.step == 1 and state.epoch == 1
    assert state.stop_requested and state.stop_reason is StopReason.TIME_BUDGET
    assert state.elapsed_s > 0


def test_max_steps_stops_mid_epoch(tiny_batches, make_model, loss_fn) -> None:
    config = TrainerConfig(epochs=10, max_steps=5, **CPU_SGD)
    state = Trainer(make_model(nn.Linear(3, 1)), loss_fn, config).fit(tiny_batches)
    assert (state.step, state.epoch) == (5, 2)
    assert state.stop_reason is StopReason.MAX_STEPS and "max_steps=5" in state.stop_detail and state.total_steps == 5


def test_validation_records_val_loss(tiny_batches, make_model, loss_fn) -> None:
    model = make_model(nn.Linear(3, 1))
    val = tiny_batches[:2]
    state = Trainer(model, loss_fn, TrainerConfig(epochs=4, **CPU_SGD), [Validation(val, every_n_epochs=2)]).fit(
        tiny_batches
    )
    assert len(state.history["val_loss"]) == 2
    assert state.metrics["val_loss"] == pytest.approx(Inferencer("cpu").validate(model, val, loss_fn))
    assert model.training


def test_fit_with_val_loader_adds_validation(tiny_batches, make_model, loss_fn) -> None:
    trainer = Trainer(make_model(nn.Linear(3, 1)), loss_fn, TrainerConfig(epochs=3, **CPU_SGD))
    state = trainer.fit(tiny_batches, val_loader=tiny_batches[:1])
    assert len(state.history["val_loss"]) == 3
    assert "Validation" not in names(trainer.callbacks)


def test_validation_without_loader_raises(tiny_batches, make_model, loss_fn) -> None:
    trainer = Trainer(make_model(nn.Linear(3, 1)), loss_fn, TrainerConfig(epochs=1, **CPU_SGD), [Validation()])
    with pytest.raises(ValueError, match="no loader"):
        trainer.fit(tiny_batches)


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: GradientClipping(0), "max_norm"),
        (lambda: TimeBudget(-1), "max_seconds"),
        (lambda: EarlyStopping(0), "patience"),
        (lambda: EarlyStopping(2, monitor="accuracy"), "accuracy"),
        (lambda: Validation([], every_n_epochs=0), "every_n_epochs"),
        (lambda: Validation([], max_batches=0), "max_batches"),
        (lambda: LossLogger(every_n_steps=0), "every_n_steps"),
    ],
)
def test_callback_configuration_is_checked(factory, match) -> None:
    with pytest.raises(ValueError, match=match):
        factory()
