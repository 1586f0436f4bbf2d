"""The fieldcorr iGROG variant: B0 field-corrected gridding to the field-free value.

Datamodule ``FieldCorrDataModule`` (calibration from coil images as ``image_based``, plus the
B0 map and sample times); model ``BasicKernelModel`` in ``hybrid`` mode (field-free kernels,
Cartesian-side correction) or ``TimeKernelModel`` in ``kernel`` mode (kernels that also take
the sample time); loss ``KernelPredictionLoss`` in both. Importing this package registers it.
"""

from __future__ import annotations

import torch

from igrog_gadget.app.basic.loss import KernelPredictionLoss
from igrog_gadget.app.basic.model import BasicKernelModel
from igrog_gadget.app.fieldcorr.correction import correct_field
from igrog_gadget.app.fieldcorr.datamodule import FieldCorrDataModule
from igrog_gadget.app.fieldcorr.fieldmap import field_map, sample_times_s
from igrog_gadget.app.fieldcorr.model import TimeKernelModel
from igrog_gadget.app.registry import VariantSpec, register_variant
from igrog_gadget.config import IgrogConfig

__all__ = ["FieldCorrDataModule", "TimeKernelModel", "correct_field", "field_map", "sample_times_s"]


def build_model(datamodule: FieldCorrDataModule, config: IgrogConfig) -> torch.nn.Module:
    """The network of the configured mode (after ``datamodule.preprocess()``)."""
    whitening = torch.from_numpy(datamodule.whitening)
    coils = datamodule.frame.num_coils
    if config.fieldcorr.mode == "kernel":
        return TimeKernelModel(config.gridding.num_sources, coils, config.model, datamodule.time_scale_s, whitening)
    return BasicKernelModel(config.gridding.num_sources, coils, config.model, whitening)


register_variant(
    VariantSpec(
        name="fieldcorr",
        datamodule=FieldCorrDataModule,
        model=build_model,
        loss=lambda cfg: KernelPredictionLoss(),
    )
)
