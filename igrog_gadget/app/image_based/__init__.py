"""The image_based iGROG variant: kernels trained from coil images (or sensitivity maps).

Same network and loss as ``basic`` (``BasicKernelModel``, ``KernelPredictionLoss``); only
the calibration data differ (``ImageBasedDataModule``). Importing this package registers
the variant.
"""

from __future__ import annotations

import torch

from igrog_gadget.app.basic.loss import KernelPredictionLoss
from igrog_gadget.app.basic.model import BasicKernelModel
from igrog_gadget.app.image_based.datamodule import ImageBasedDataModule
from igrog_gadget.app.image_based.sources import CalibrationImages, calibration_images, coil_images_from_data
from igrog_gadget.app.registry import VariantSpec, register_variant

__all__ = ["CalibrationImages", "ImageBasedDataModule", "calibration_images", "coil_images_from_data"]

register_variant(
    VariantSpec(
        name="image_based",
        datamodule=ImageBasedDataModule,
        model=lambda dm, cfg: BasicKernelModel(
            cfg.gridding.num_sources, dm.frame.num_coils, cfg.model, torch.from_numpy(dm.whitening)
        ),
        loss=lambda cfg: KernelPredictionLoss(),
    )
)
