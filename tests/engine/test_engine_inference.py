"""Inferencer, device resolution, optimizer/scheduler factories, config checks, DataModule."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from igrog_engine import (
    DataModule,
    Inferencer,
    LossLogger,
    OptimizerConfig,
    SchedulerConfig,
    Trainer,
    TrainerConfig,
    build_optimizer,
    build_scheduler,
    move_to_device,
    resolve_device,
)


class CountingLoader:
    """Iterable over fixed batches that counts how many batches were pulled."""

    def __init__(self, batches: list[Any]) -> None:
        self.batches = batches
        self.pulled = 0

    def __iter__(self):
        for batch in self.batches:
            self.pulled += 1
            yield batch


def dropout_model(make_model) -> nn.Module:
    torch.manual_seed(0)
    return make_model(nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 1)))


def test_run_matches_direct_call_and_restores_train_mode(tiny_batches, make_model) -> None:
    model = dropout_model(make_model)
    model.train()
    outputs = Inferencer("cpu").run(model, tiny_batches)
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    with torch.no_grad():
        expected = [model(batch) for batch in tiny_batches]
    assert len(outputs) == 3
    for got, want in zip(outputs, expected):
        assert got.device.type == "cpu"
        torch.testing.assert_close(got, want)


def test_run_restores_mixed_modes(tiny_batches, make_model) -> None:
    model = dropout_model(make_model)
    model.train()
    model.net[1].eval()
    Inferencer().run(model, tiny_batches, max_batches=1)
    assert model.training and model.net[0].training and not model.net[1].training


def test_run_accepts_tuple_batches() -> None:
    class TupleModel(nn.Module):
        def forward(self, batch):
            x, y = batch
            return {"sum": x + y}

    batches = [(torch.ones(2, 3), torch.ones(2, 3))]
    (out,) = Inferencer().run(TupleModel(), batches)
    torch.testing.assert_close(out["sum"], torch.full((2, 3), 2.0))


def test_validate_consumes_only_max_batches(tiny_batches, make_model, loss_fn) -> None:
    model = dropout_model(make_model)
    loader = CountingLoader(tiny_batches)
    value = Inferencer().validate(model, loader, loss_fn, max_batches=2)
    assert loader.pulled == 2
    expected = Inferencer().validate(model, tiny_batches[:2], loss_fn)
    assert value == pytest.approx(expected)
    assert model.training


def test_validate_weights_by_batch_size(make_model, loss_fn) -> None:
    model = make_model(nn.Linear(1, 1, bias=False))
    with torch.no_grad():
        model.net.weight.fill_(0.0)
    batches = [{"x": torch.zeros(3, 1), "y": torch.ones(3, 1)}, {"x": torch.zeros(1, 1), "y": torch.full((1, 1), 3.0)}]
    # per-sample squared errors: 1, 1, 1, 9 -> mean 3 (an unweighted mean of batch means would give 5)
    assert Inferencer().validate(model, batches, loss_fn) == pytest.approx(3.0)


def test_validate_rejects_empty_loader_and_bad_max_batches(make_model, loss_fn, tiny_batches) -> None:
    model = make_model(nn.Linear(3, 1))
    with pytest.raises(ValueError, match="no batches"):
        Inferencer().validate(model, [], loss_fn)
    with pytest.raises(ValueError, match="max_batches.*0"):
        Inferencer().validate(model, tiny_batches, loss_fn, max_batches=0)


def test_move_to_device_keeps_structure() -> None:
    batch = {"x": torch.ones(2), "meta": "scan-1", "pair": (torch.zeros(1), 3), "list": [torch.ones(1)]}
    moved = move_to_device(batch, torch.device("cpu"))
    assert moved["meta"] == "scan-1" and moved["pair"][1] == 3 and isinstance(moved["list"], list)


# ---------------------------------------------------------------- devices


def test_resolve_device_known_names() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "mps:0", ""])
def test_resolve_device_unknown_names(name: str) -> None:
    with pytest.raises(ValueError, match=f"unknown device '{name}'"):
        resolve_device(name)


def test_resolve_device_rejects_non_strings() -> None:
    with pytest.raises(TypeError, match="3"):
        resolve_device(3)  # type: ignore[arg-type]


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_resolve_device_cuda_unavailable(name: str) -> None:
    with pytest.raises(ValueError, match=f"'{name}'.*not available"):
        resolve_device(name)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resolve_device_cuda_available() -> None:
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ValueError, match="cuda:99"):
        resolve_device("cuda:99")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_trainer_and_inferencer_on_cuda(tiny_batches, make_model, loss_fn) -> None:
    model = make_model(nn.Linear(3, 1))
    config = TrainerConfig(epochs=2, device="cuda", optimizer=OptimizerConfig("adam", {"lr": 0.01}))
    state = Trainer(model, loss_fn, config, [LossLogger()]).fit(tiny_batches, val_loader=tiny_batches)
    assert next(model.parameters()).device.type == "cuda" and len(state.history["val_loss"]) == 2
    outputs = Inferencer("cuda").run(model, tiny_batches)
    assert all(out.device.type == "cpu" for out in outputs)


# ---------------------------------------------------------------- optimizers / schedulers / config


def test_build_optimizer_names_and_params() -> None:
    params = [nn.Parameter(torch.zeros(2))]
    assert isinstance(build_optimizer(OptimizerConfig("AdamW", {"lr": 0.01}), params), torch.optim.AdamW)
    sgd = build_optimizer(OptimizerConfig("sgd", {"lr": 0.2, "momentum": 0.9, "weight_decay": 1e-4}), params)
    assert isinstance(sgd, torch.optim.SGD)
    assert (sgd.param_groups[0]["lr"], sgd.param_groups[0]["momentum"]) == (0.2, 0.9)
    assert isinstance(build_optimizer(OptimizerConfig(), params), torch.optim.Adam)


def test_bad_optimizer_name_or_params_raise() -> None:
    params = [nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="'rmsprop'.*adam, adamw, sgd"):
        build_optimizer(OptimizerConfig("rmsprop"), params)
    with pytest.raises(ValueError, match="bogus"):
        build_optimizer(OptimizerConfig("adam", {"bogus": 1}), params)


def test_build_scheduler_names_and_intervals() -> None:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(2))], lr=0.1, momentum=0.9)
    assert build_scheduler(SchedulerConfig(), optimizer, 10) is None
    assert build_scheduler(SchedulerConfig("Step", {"step_size": 2}), optimizer, None).interval == "epoch"
    assert build_scheduler(SchedulerConfig("cosine"), optimizer, 10).interval == "step"
    with pytest.raises(ValueError, match="'linear'.*none, step, cosine, onecycle"):
        build_scheduler(SchedulerConfig("linear"), optimizer, 10)
    with pytest.raises(ValueError, match="step_size"):
        build_scheduler(SchedulerConfig("step"), optimizer, 10)
    with pytest.raises(ValueError, match="total_steps.*None"):
        build_scheduler(SchedulerConfig("cosine"), optimizer, None)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        (TrainerConfig(epochs=0), "epochs.*0"),
        (TrainerConfig(epochs=True), "epochs.*True"),
        (TrainerConfig(max_steps=0), "max_steps.*0"),
        (TrainerConfig(device=""), "device"),
        (TrainerConfig(optimizer=OptimizerConfig("lbfgs")), "optimizer.*'lbfgs'"),
        (TrainerConfig(scheduler=SchedulerConfig("plateau")), "scheduler.*'plateau'"),
    ],
)
def test_trainer_config_validate(config: TrainerConfig, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        config.validate()


def test_trainer_rejects_bad_config_and_device(make_model, loss_fn) -> None:
    with pytest.raises(ValueError, match="'lbfgs'"):
        Trainer(make_model(nn.Linear(3, 1)), loss_fn, TrainerConfig(optimizer=OptimizerConfig("lbfgs")))
    with pytest.raises(ValueError, match="'tpu'"):
        Trainer(make_model(nn.Linear(3, 1)), loss_fn, TrainerConfig(device="tpu"))
    with pytest.raises(ValueError, match="empty"):
        Trainer(make_model(nn.Linear(3, 1)), loss_fn, TrainerConfig(device="cpu")).fit([])


def test_loss_must_be_scalar(tiny_batches, make_model) -> None:
    trainer = Trainer(make_model(nn.Linear(3, 1)), lambda out, batch: out, TrainerConfig(device="cpu"))
    with pytest.raises(ValueError, match="scalar"):
        trainer.fit(tiny_batches)


# ---------------------------------------------------------------- DataModule


class ToyDataModule(DataModule):
    def __init__(self) -> None:
        self.batches: list[dict[str, torch.Tensor]] = []

    def preprocess(self) -> ToyDataModule:
        generator = torch.Generator().manual_seed(2)
        x = torch.randn(12, 3, generator=generator)
        self.batches = [{"x": x[i : i + 4], "y": x[i : i + 4].sum(1, keepdim=True)} for i in (0, 4, 8)]
        return self

    def train_dataloader(self):
        return self.batches

    def val_dataloader(self):
        return self.batches[:1]

    def test_dataloader(self):
        return self.batches

    def postprocess(self, outputs: list[Any]) -> ToyDataModule:
        self.data = torch.cat(outputs)
        return self


def test_datamodule_life_cycle(make_model, loss_fn) -> None:
    with pytest.raises(TypeError):
        DataModule()  # type: ignore[abstract]
    dm = ToyDataModule().preprocess()
    assert dm.data is None
    model = make_model(nn.Linear(3, 1))
    state = Trainer(model, loss_fn, TrainerConfig(epochs=2, device="cpu")).fit(dm.train_dataloader(), dm.val_dataloader())
    assert len(state.history["val_loss"]) == 2
    assert dm.postprocess(Inferencer().run(model, dm.test_dataloader())) is dm
    assert dm.data.shape == (12, 1)
