"""The image_based iGROG variant: kernels trained from coil images (or sensitivity maps).

Same network and loss as ``basic`` (``KernelModel``, ``KernelPredictionLoss``); only the
calibration data differ (``ImageBasedDataModule``). Listed in ``igrog_gadget.app.registry``.
"""

from __future__ import annotations

from igrog_gadget.app.image_based.datamodule import ImageBasedDataModule
from igrog_gadget.app.image_based.sources import CalibrationImages, calibration_images, coil_images_from_data

__all__ = ["CalibrationImages", "ImageBasedDataModule", "calibration_images", "coil_images_from_data"]
