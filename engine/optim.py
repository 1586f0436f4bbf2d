"""Optimizer and learning-rate scheduler factories driven by small config dataclasses."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, OneCycleLR, StepLR

logger = logging.getLogger(__name__)

OPTIMIZERS: dict[str, type[Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}
#: Scheduler names and whether each steps per optimizer "step" or per "epoch".
SCHEDULERS: dict[str, Literal["step", "epoch"] | None] = {
    "none": None,
    "step": "epoch",
    "cosine": "step",
    "onecycle": "step",
}


@dataclass
class OptimizerConfig:
    """Optimizer name (adam, adamw, sgd; any case) and its keyword arguments (lr, ...)."""

    name: str = "adam"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class SchedulerConfig:
    """Scheduler name (none, step, cosine, onecycle; any case) and its keyword arguments."""

    name: str = "none"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SchedulerHandle:
    """A built scheduler plus when to step it: every optimizer ``"step"`` or every ``"epoch"``."""

    scheduler: LRScheduler
    interval: Literal["step", "epoch"]

    def step(self) -> None:
        """Advance the wrapped scheduler by one interval."""
        self.scheduler.step()


def normalize_name(name: Any, known: Iterable[str], kind: str) -> str:
    """Lower-case ``name`` and check it is one of ``known``; ``ValueError`` otherwise."""
    known = tuple(known)
    if not isinstance(name, str):
        raise ValueError(f"{kind} name must be a str, got {type(name).__name__}: {name!r}")
    key = name.strip().lower()
    if key not in known:
        raise ValueError(f"unknown {kind} {name!r}; known: {', '.join(known)}")
    return key


def _check_params(params: Any, kind: str) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise TypeError(f"{kind} params must be a dict, got {type(params).__name__}: {params!r}")
    return dict(params)


def build_optimizer(config: OptimizerConfig, parameters: Iterable[Any]) -> Optimizer:
    """Build the optimizer named by ``config`` over ``parameters`` with ``config.params`` as kwargs."""
    key = normalize_name(config.name, OPTIMIZERS, "optimizer")
    params = _check_params(config.params, "optimizer")
    try:
        optimizer = OPTIMIZERS[key](parameters, **params)
    except TypeError as exc:
        raise ValueError(f"invalid params {params!r} for optimizer {config.name!r}: {exc}") from exc
    logger.debug("built optimizer %s with %s", key, params)
    return optimizer


def build_scheduler(
    config: SchedulerConfig, optimizer: Optimizer, total_steps: int | None
) -> SchedulerHandle | None:
    """Build the scheduler named by ``config``; ``None`` for ``"none"``.

    * ``step``: ``StepLR`` stepped per epoch; needs ``step_size`` (epochs), ``gamma`` optional.
    * ``cosine``: ``CosineAnnealingLR`` with ``T_max=total_steps``, stepped per step; ``eta_min``.
    * ``onecycle``: ``OneCycleLR`` over ``total_steps``, stepped per step; ``max_lr`` defaults
      to the optimizer's current learning rate(s).

    ``total_steps`` (optimizer steps of the whole run) is required by cosine and onecycle.
    """
    key = normalize_name(config.name, SCHEDULERS, "scheduler")
    params = _check_params(config.params, "scheduler")
    interval = SCHEDULERS[key]
    if interval is None:
        if params:
            logger.warning("scheduler 'none' ignores params %r", params)
        return None
    if key == "step" and "step_size" not in params:
        raise ValueError(f"scheduler 'step' needs params['step_size'] (epochs between decays), got {params!r}")
    if interval == "step" and (
        isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1
    ):
        raise ValueError(f"scheduler {config.name!r} needs total_steps >= 1, got {total_steps!r}")
    try:
        scheduler: LRScheduler
        if key == "step":
            scheduler = StepLR(optimizer, **params)
        elif key == "cosine":
            params.setdefault("T_max", total_steps)
            scheduler = CosineAnnealingLR(optimizer, **params)
        else:
            params.setdefault("max_lr", [group["lr"] for group in optimizer.param_groups])
            if "epochs" not in params:
                params.setdefault("total_steps", total_steps)
            scheduler = OneCycleLR(optimizer, **params)
    except TypeError as exc:
        raise ValueError(f"invalid params {params!r} for scheduler {config.name!r}: {exc}") from exc
    logger.debug("built scheduler %s (per %s) with %s", key, interval, params)
    return SchedulerHandle(scheduler=scheduler, interval=interval)
