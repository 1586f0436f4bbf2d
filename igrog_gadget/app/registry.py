"""Variants by name: each is a datamodule + a model + a loss run by the shared engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from igrog_gadget.config import IgrogConfig
from igrog_gadget.errors import ConfigError


@dataclass(frozen=True)
class VariantSpec:
    """How to build one variant's parts."""

    name: str
    datamodule: Callable[..., object]
    """``datamodule(frame, config, with_training=bool)`` → an engine DataModule."""
    model: Callable[[object, IgrogConfig], nn.Module]
    """``model(datamodule, config)`` → the network (after ``datamodule.preprocess()``)."""
    loss: Callable[[IgrogConfig], nn.Module]


_REGISTRY: dict[str, VariantSpec] = {}


def register_variant(spec: VariantSpec) -> VariantSpec:
    _REGISTRY[spec.name] = spec
    return spec


def get_variant(name: str) -> VariantSpec:
    """The variant called ``name``; ConfigError listing the known ones otherwise."""
    _load_builtin_variants()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown variant {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def _load_builtin_variants() -> None:
    if "basic" in _REGISTRY:
        return
    from igrog_gadget.app.basic import BasicDataModule, BasicKernelModel, KernelPredictionLoss

    register_variant(
        VariantSpec(
            name="basic",
            datamodule=BasicDataModule,
            model=lambda dm, cfg: BasicKernelModel(
                cfg.gridding.num_sources, dm.frame.num_coils, cfg.model, torch.from_numpy(dm.whitening)
            ),
            loss=lambda cfg: KernelPredictionLoss(),
        )
    )
    try:  # variants added later register themselves on import
        import igrog_gadget.app.image_based  # noqa: F401
    except ImportError:
        pass
    try:
        import igrog_gadget.app.fieldcorr  # noqa: F401
    except ImportError:
        pass
