"""Datamodule of the image_based variant: training pairs from coil images.

Instead of interpolating a Cartesian ACS block, the off-grid source values are the exact
Fourier transform of coil images (a type-2 NUFFT at the source positions) and the targets
their values on the grid (the centred FFT of the images), so calibration is limited by the
images' k-space extent (the whole recon grid for full-resolution images), not by the size
of an ACS block. Where the images come from: ``igrog_gadget.app.image_based.sources``.

References:
    Abraham, Nishimura, Cao, Liao, Setsompop, "Implicit Representation of GRAPPA Kernels
    for Fast MRI Reconstruction", arXiv:2310.10823.
"""

from __future__ import annotations

import logging

import numpy as np

from igrog_gadget.app.basic.datamodule import BasicDataModule
from igrog_gadget.app.common.frame import FrameInputs
from igrog_gadget.app.common.pairs import TrainingPairs, synthesize_pairs
from igrog_gadget.app.image_based.sources import CalibrationImages, calibration_images
from igrog_gadget.config import IgrogConfig
from igrog_gadget.gridding.calibration import CalibrationBlock
from igrog_gadget.gridding.nufft import centred_fft2, nufft_forward

logger = logging.getLogger(__name__)


class ImageBasedDataModule(BasicDataModule):
    """``BasicDataModule`` whose calibration is a set of coil images.

    After ``preprocess()`` (with training): ``images`` (the ``CalibrationImages``), ``block``
    (their Cartesian k-space, (coils, my, mx), for the targets) and the pairs.
    """

    def __init__(self, frame: FrameInputs, config: IgrogConfig, with_training: bool = True) -> None:
        super().__init__(frame, config, with_training)
        self.images: CalibrationImages | None = None

    def make_calibration_block(self) -> CalibrationBlock:
        """The coil images' Cartesian k-space as a block (targets are its on-grid values)."""
        self.images = calibration_images(self.frame, self.config.image_calibration)
        kspace = centred_fft2(self.images.images).astype(np.complex64)
        mx, my = self.images.matrix
        logger.info("image calibration from %s: %d coils, %d x %d", self.images.source, kspace.shape[0], my, mx)
        return CalibrationBlock(kspace=kspace, kx0=-(mx // 2), ky0=-(my // 2), source=f"images ({self.images.source})")

    def make_training_pairs(self, block: CalibrationBlock) -> TrainingPairs:
        """Pairs at the trajectory's own offsets; sources by NUFFT of the coil images."""
        cal = self.config.calibration
        rng = np.random.default_rng(self.config.training.seed)
        images = self.images.images
        return synthesize_pairs(
            block,
            lambda positions: nufft_forward(images, positions),
            self.geometry.offsets,
            cal.num_training_pairs,
            cal.edge_margin,
            cal.offset_jitter,
            rng,
            normalize=cal.normalize_pairs,
        )
