"""Datamodule of the image_based variant: training pairs from coil images.

Instead of interpolating a Cartesian ACS block, the off-grid source values are the exact
Fourier transform of coil images (a type-2 NUFFT at the source positions) and the targets
their values on the grid (the centred FFT of the images), so calibration is limited by the
images' k-space extent (the whole recon grid for full-resolution images), not by the size
of an ACS block. Where the images come from: ``igrog_gadget.app.image_based.sources``.

2D and 3D frames alike: a 3D frame (kooshball, 3D stack of spirals, cones) calibrates from 3D
coil images (coils, mz, my, mx), its pairs by a 3D NUFFT and FFT; the kernels are fitted as
``basic`` fits a 3D frame's (``training.volume.fit``).

References:
    Abraham, Nishimura, Cao, Liao, Setsompop, "Implicit Representation of GRAPPA Kernels
    for Fast MRI Reconstruction", arXiv:2310.10823.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from igrog_gadget.app.basic.datamodule import BasicDataModule
from igrog_gadget.core.calibrate import calibration_block
from igrog_gadget.core.datamodule import prepared
from igrog_gadget.core.frame import FrameInputs
from igrog_gadget.core.pairs import TrainingPairs
from igrog_gadget.core.virtual_coils import COIL_IMAGE_SERIES
from igrog_gadget.app.image_based.pairs import image_kspace, trajectory_pairs
from igrog_gadget.app.image_based.sources import CalibrationImages, calibration_images
from igrog_gadget.config import IgrogConfig, ImageCalibrationConfig
from igrog_gadget.errors import CalibrationError
from igrog_gadget.numerics.calibration import CalibrationBlock
from igrog_gadget.numerics.geometry import SampleGeometry
from igrog_gadget.numerics.nufft import nufft_forward

logger = logging.getLogger(__name__)


class ImageBasedDataModule(BasicDataModule):
    """``BasicDataModule`` whose calibration is a set of coil images (2D and 3D frames).

    After ``preprocess()`` (with training): ``images`` (the ``CalibrationImages``), ``block``
    (their Cartesian k-space, (coils, my, mx) or (coils, mz, my, mx), for the targets) and the pairs.
    """

    volumetric = True

    def __init__(
        self, frame: FrameInputs, config: IgrogConfig, with_training: bool = True, geometry: SampleGeometry | None = None
    ) -> None:
        super().__init__(frame, config, with_training, geometry)
        self.images: CalibrationImages | None = None

    @property
    def image_config(self) -> ImageCalibrationConfig:
        """The configuration's ``[image_calibration]`` section (every image variant has one)."""
        return prepared(self.config.image_calibration, "the [image_calibration] section")

    @property
    def prepared_images(self) -> CalibrationImages:
        """The calibration images (after ``make_calibration_block()``)."""
        return prepared(self.images, "the calibration images")

    def make_calibration_block(self) -> CalibrationBlock:
        """The coil images' Cartesian k-space as a block (targets are its on-grid values): its
        central ``target_size`` square (cube), within the part the data determine."""
        self.images = calibration_images(self.frame, self.image_config, seed=self.config.training.seed)
        kspace = image_kspace(self.prepared_images.images).astype(np.complex64)
        shape = kspace.shape[1:]  # ([mz,] my, mx)
        size = self.image_config.target_size
        if self.prepared_images.dense_size is not None:
            size = min(size, self.prepared_images.dense_size) if size > 0 else self.prepared_images.dense_size
        sides = tuple(min(size, m) for m in shape) if size > 0 else shape
        region = tuple(slice(m // 2 - a // 2, m // 2 - a // 2 + a) for m, a in zip(shape, sides))
        logger.info(
            "image calibration from %s: %d coils, %s, targets in the central %s",
            self.prepared_images.source, kspace.shape[0], " x ".join(map(str, shape)), " x ".join(map(str, sides)),
        )
        corner = [-(a // 2) for a in reversed(sides)] + [0]  # (kx0, ky0, kz0)
        return CalibrationBlock(
            kspace=np.ascontiguousarray(kspace[(slice(None),) + region]),
            kx0=corner[0],
            ky0=corner[1],
            source=f"images ({self.prepared_images.source})",
            kz0=corner[2],
        )

    @property
    def partial_frame_ok(self) -> bool:
        """Images from a series or a file; images made from a partial frame's samples are not."""
        return self.images is not None and self.images.source != "data"

    @classmethod
    def trains_before_frame_ends(cls, frame: FrameInputs, config: IgrogConfig) -> bool:
        """With coil images or sensitivity maps in the input, or an image file configured, in
        2D. A 3D frame trains from the whole frame, as ``basic``'s: its first readouts give few
        of its offsets."""
        ic = prepared(config.image_calibration, "the [image_calibration] section")
        if ic.source == "data" or frame.dims != 2:
            return False
        return any(name in frame.images for name in COIL_IMAGE_SERIES) or bool(ic.image_file)

    def pair_positions(self) -> str:
        """"trajectory" or "random" (``image_calibration.pair_positions``; auto: trajectory for
        images given in a series or file, random for images made from the data, whose noise
        is shared by sources and targets)."""
        choice = self.image_config.pair_positions
        if choice == "auto":
            return "random" if self.prepared_images.source == "data" else "trajectory"
        return choice

    @property
    def noise_std(self) -> float:
        """Complex noise std of one sample in the images' k-space units (0: unknown)."""
        return float(self.prepared_images.noise_std or 0.0) if self.images is not None else 0.0

    def frame_kspace_block(self) -> CalibrationBlock | None:
        """The k-space calibration block of the frame's own data (its ACS lines or its densely
        sampled centre; ``block`` is the images' k-space), None when it has neither."""
        try:
            return calibration_block(self.frame, self.config.calibration, self.config.gridding.grid_oversampling)
        except CalibrationError as error:
            logger.info("the centre keeps its gridded values: %s", error)
            return None

    def off_grid_values(self, block: CalibrationBlock) -> Callable[[np.ndarray], np.ndarray]:
        """The coil images' k-space at off-grid positions (m, dims) → (coils, m), by NUFFT (exact, not interpolated)."""
        images = self.prepared_images.images
        return lambda positions: nufft_forward(images, positions)

    def make_training_pairs(self, block: CalibrationBlock, noise_std: float | None = None) -> TrainingPairs:
        """Pairs from the coil images, at the trajectory's own samples or at random targets.

        ``trajectory``: ``trajectory_pairs`` with noise ``trajectory_noise`` x the data's noise.
        ``random``: random targets in the central ``target_size`` (the block), offsets drawn from
        the trajectory's, sources by NUFFT of the images plus ``calibration.noise_augmentation``
        x the data's noise (as ``basic``).
        """
        cal, ic = self.config.calibration, self.image_config
        rng = np.random.default_rng(self.config.training.seed)
        images = self.prepared_images.images
        noise = (self.prepared_images.noise_std or 0.0) if noise_std is None else noise_std
        if self.pair_positions() == "trajectory":
            return trajectory_pairs(
                images,
                self.prepared_geometry,
                cal.num_training_pairs,
                ic.trajectory_region,
                cal.edge_margin,
                cal.offset_jitter,
                ic.trajectory_noise * noise,
                rng,
                normalize=cal.normalize_pairs,
            )
        return super().make_training_pairs(block, noise)
