"""Variants by name: each is a datamodule + a model + a loss run by the shared engine.

``VARIANT_TABLE`` lists them explicitly; nothing registers itself on import, and an import
error inside a variant is raised as it is (never reported as an unknown variant). The names
must be those of the standard configuration files (``igrog_gadget.config``; a test checks).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from torch import nn

from igrog_gadget.core.datamodule import GriddingDataModule
from igrog_gadget.core.closed_form import closed_form_model
from igrog_gadget.core.kernel_model import KernelModel
from igrog_gadget.core.loss import KernelPredictionLoss
from igrog_gadget.config import IgrogConfig
from igrog_gadget.errors import ConfigError


@dataclass(frozen=True)
class VariantSpec:
    """How to build one variant's parts."""

    name: str
    datamodule: type[GriddingDataModule]
    """``datamodule(frame, config, with_training, geometry)`` → the variant's datamodule."""
    model: Callable[[GriddingDataModule, IgrogConfig], nn.Module]
    """``model(datamodule, config)`` → the network (after a training ``datamodule.preprocess()``)."""
    loss: Callable[[IgrogConfig], nn.Module]


def kernel_model(datamodule: GriddingDataModule, config: IgrogConfig) -> nn.Module:
    """The shared ``KernelModel`` for the datamodule's coils and source whitening, or with
    ``training.fit = closed_form`` the ``ClosedFormKernelModel`` of its calibration block."""
    if config.kernel_fit() == "closed_form":
        return closed_form_model(datamodule, config)
    return KernelModel(
        datamodule.num_sources,
        datamodule.num_coils,
        config.model,
        datamodule.whitening,
        seed=config.training.seed,
        offset_dims=datamodule.offset_dims,
    )


def kernel_loss(config: IgrogConfig) -> nn.Module:
    return KernelPredictionLoss()


#: name → (module, datamodule class, model factory, loss factory); the factories are module-level
#: names, ``None`` for the shared ``kernel_model`` / ``kernel_loss``.
VARIANT_TABLE: dict[str, tuple[str, str, str | None, str | None]] = {
    "basic": ("igrog_gadget.app.basic", "BasicDataModule", None, None),
    "image_based": ("igrog_gadget.app.image_based", "ImageBasedDataModule", None, None),
    "fieldcorr": ("igrog_gadget.app.fieldcorr", "FieldCorrDataModule", "build_model", None),
}


def get_variant(name: str) -> VariantSpec:
    """The variant called ``name``; ConfigError listing the known ones otherwise."""
    try:
        module_name, datamodule, model, loss = VARIANT_TABLE[name]
    except KeyError:
        raise ConfigError(f"unknown variant {name!r}; known: {', '.join(sorted(VARIANT_TABLE))}") from None
    module = importlib.import_module(module_name)
    return VariantSpec(
        name=name,
        datamodule=getattr(module, datamodule),
        model=getattr(module, model) if model else kernel_model,
        loss=getattr(module, loss) if loss else kernel_loss,
    )
