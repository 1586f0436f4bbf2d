"""The fieldcorr iGROG variant: B0 field-corrected gridding to the field-free value.

Datamodule ``FieldCorrDataModule`` (calibration from coil images as ``image_based``, plus the
B0 map and sample times); model ``KernelModel`` in ``hybrid`` mode (field-free kernels,
Cartesian-side correction) or ``TimeKernelModel`` in ``kernel`` mode (kernels that also take
the sample time, ``build_model``); loss ``KernelPredictionLoss`` in both. Listed in
``igrog_gadget.app.registry``.
"""

from __future__ import annotations

import torch

from igrog_gadget.core.datamodule import GriddingDataModule, prepared
from igrog_gadget.core.closed_form import closed_form_model
from igrog_gadget.core.kernel_model import KernelModel
from igrog_gadget.app.fieldcorr.correction import correct_field
from igrog_gadget.app.fieldcorr.datamodule import FieldCorrDataModule
from igrog_gadget.app.fieldcorr.fieldmap import field_map, sample_times_s
from igrog_gadget.app.fieldcorr.model import TimeKernelModel
from igrog_gadget.config import IgrogConfig

__all__ = ["FieldCorrDataModule", "TimeKernelModel", "build_model", "correct_field", "field_map", "sample_times_s"]


def build_model(datamodule: GriddingDataModule, config: IgrogConfig) -> torch.nn.Module:
    """The network of the configured mode (after ``datamodule.preprocess()``)."""
    whitening = datamodule.whitening
    coils = datamodule.num_coils
    if prepared(config.fieldcorr, "the [fieldcorr] section").mode == "kernel":
        time_scale_s = datamodule.model_options()["time_scale_s"]
        return TimeKernelModel(
            datamodule.num_sources, coils, config.model, time_scale_s, whitening, seed=config.training.seed,
            offset_dims=datamodule.offset_dims,
        )
    if config.kernel_fit() == "closed_form":
        return closed_form_model(datamodule, config)
    return KernelModel(
        datamodule.num_sources, coils, config.model, whitening, seed=config.training.seed, offset_dims=datamodule.offset_dims
    )
