"""Choosing and applying the coil compression of a frame (see ``igrog_gadget.numerics.coils``)."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from igrog_gadget.core.frame import FrameInputs
from igrog_gadget.config import GriddingConfig
from igrog_gadget.numerics.coils import CoilTransform, compression_transform, noise_prewhitener

logger = logging.getLogger(__name__)

#: Image series with one channel per coil: compressed with the data.
COIL_IMAGE_SERIES = ("coil_images", "sensitivity_maps")


def wants_compression(coils: int, config: GriddingConfig) -> bool:
    """Whether data with ``coils`` channels are gridded in virtual coils."""
    if config.coil_compression == "off":
        return False
    if config.coil_compression == "on":
        return True
    return coils > config.compression_threshold


def frame_coil_transform(frame: FrameInputs, config: GriddingConfig, num_virtual: int = 0) -> CoilTransform:
    """The compression of a calibration key, from its first frame's samples and calibration lines.

    Prewhitened first when the frame carries a noise covariance and ``config.prewhiten``.
    Identity when no compression is wanted. ``num_virtual`` > 0 fixes the number of virtual
    coils (e.g. that of the model a training warm-starts from) where ``config.virtual_coils``
    leaves it to the energy rule.
    """
    coils = frame.num_coils
    if not wants_compression(coils, config):
        return CoilTransform.identity(coils)
    prewhitener = None
    if config.prewhiten and frame.noise_covariance is not None:
        prewhitener = noise_prewhitener(frame.noise_covariance)
    parts = [frame.flat_samples()] + [data for data, _ in frame.calibration_lines]
    transform = compression_transform(
        np.concatenate(parts, axis=1), config.virtual_coils or num_virtual, config.compression_energy, prewhitener,
        config.min_virtual_coils,
    )
    if transform.prewhitened:
        whitening = "prewhitened with the noise scans' coil covariance"
    elif frame.noise_covariance is None:
        whitening = "not prewhitened (no noise scans)"
    else:
        whitening = "not prewhitened (gridding.prewhiten = false)"
    logger.info(
        "coil compression: %d -> %d virtual coils (%.4f of the calibration energy), data %s",
        coils, transform.num_virtual, transform.kept_energy, whitening,
    )
    return transform


def to_virtual_coils(frame: FrameInputs, transform: CoilTransform) -> FrameInputs:
    """The frame in virtual coils: samples, calibration lines and per-coil image series."""
    if transform.is_identity:
        return frame
    images = {
        name: transform.to_virtual(array) if name in COIL_IMAGE_SERIES and array.shape[0] == transform.num_physical else array
        for name, array in frame.images.items()
    }
    return dataclasses.replace(
        frame,
        samples=transform.to_virtual(frame.samples),
        calibration_lines=[(transform.to_virtual(data), positions) for data, positions in frame.calibration_lines],
        images=images,
        noise_covariance=None if frame.noise_covariance is None else transform.covariance_to_virtual(frame.noise_covariance),
        coil_transform=transform,
    )
