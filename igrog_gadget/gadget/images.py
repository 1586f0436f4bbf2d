"""Magnitude images of gridded frames (SENSE or RSS, ``igrog_gadget.recon.images``) as ISMRMRD images for MRD clients."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import ismrmrd
import numpy as np

from igrog_gadget.gadget.settings import IMAGE_DTYPES
from igrog_gadget.io.convert import frame_image_of, image_data
from igrog_gadget.io.output_geometry import OutputGeometry
from igrog_gadget.scan import GriddedFrame

if TYPE_CHECKING:
    from igrog_gadget.config import ReconConfig
    from igrog_gadget.recon.images import FrameImage, FrameImager

logger = logging.getLogger(__name__)

#: Largest pixel value of ``ushort`` images (12 bit, as DICOM viewers expect from MR images).
USHORT_MAX = 4095


def frame_image(
    frame: GriddedFrame,
    picture: "FrameImage",
    fov_mm: tuple[float, float, float],
    image_index: int,
    image_series_index: int = 1,
    dtype: str = "float",
) -> ismrmrd.Image:
    """The magnitude image ``picture`` of a gridded frame with a complete image header.

    Header: matrix_size (nx, ny, 1) (a 3D frame: (nx, ny, nz), one 3D image: the volume is one
    frame, as the Cartesian gadgets hand a 3D encoding on; a stack-of-stars partition is a 2D
    frame and gives its own 2D image), field_of_view ``fov_mm``, channels 1, image_type
    MAGNITUDE, data_type FLOAT or USHORT; position / read_dir / phase_dir / slice_dir /
    patient_table_position, measurement_uid and time stamps from the frame's template
    acquisition; average, slice, contrast, phase, repetition and set from its counters;
    ``image_index`` and ``image_series_index`` as given. Meta: ``ImageProcessingHistory``
    [IGROG, SENSE or RSS], ``SeriesName`` igrog_sense or igrog_rss, ``IgrogImageNote`` why RSS
    stood in for SENSE. ``ushort`` images are scaled so that the largest pixel is
    ``USHORT_MAX``; the factor is in the meta attribute ``IgrogScale`` (stored value = magnitude x scale).

    Args:
        frame: the gridded frame (header fields and facts).
        picture: its image, magnitude (ny, nx) or (nz, ny, nx), already cropped to ``fov_mm``.
        fov_mm: field of view of the image (x, y, z) in mm.
        image_index: 1-based running index of the image in its connection.
        image_series_index: series number written into the header.
        dtype: ``"float"`` or ``"ushort"``.
    """
    if dtype not in IMAGE_DTYPES:
        raise ValueError(f"image dtype must be one of {', '.join(IMAGE_DTYPES)}, got {dtype!r}")
    magnitude = np.asarray(picture.magnitude, np.float32)
    meta = ismrmrd.Meta()
    meta["DataRole"] = "Image"
    meta["ImageProcessingHistory"] = ["IGROG", picture.method.upper()]
    meta["SeriesName"] = f"igrog_{picture.method}"
    if picture.note:
        meta["IgrogImageNote"] = picture.note
    report = frame.report
    meta["IgrogVariant"] = report.variant if report else ""
    if report is not None and np.isfinite(report.estimated_nrmse):
        meta["IgrogEstimatedNRMSE"] = repr(round(float(report.estimated_nrmse), 6))  # the per-frame error estimate
    if report is not None and report.training is not None:
        meta["IgrogTraining"] = report.training.stop
    if report is not None and report.coils is not None and report.coils.virtual_coils != report.coils.coils:
        meta["IgrogVirtualCoils"] = str(int(report.coils.virtual_coils))
    if dtype == "ushort":
        peak = float(magnitude.max())
        scale = USHORT_MAX / peak if peak > 0 else 1.0
        pixels = np.clip(np.rint(magnitude * scale), 0, USHORT_MAX).astype(np.uint16)
        meta["IgrogScale"] = repr(scale)
        data_type = ismrmrd.DATATYPE_USHORT
    else:
        pixels = magnitude
        data_type = ismrmrd.DATATYPE_FLOAT
    image = frame_image_of(
        image_data(pixels), frame, fov_mm, image_index, image_series_index, data_type, ismrmrd.IMTYPE_MAGNITUDE
    )
    image.meta = meta
    return image


class ImagesOutput:
    """The ``images`` output (the gadget's ``output=images``, ``igrog pipe --emit images``): each
    frame's image (``igrog_gadget.recon.images``: SENSE or RSS, maps cached per calibration key)
    cropped to the input's recon FOV (``OutputGeometry.recon_region``), as an ISMRMRD image
    (``frame_image``) numbered from 1."""

    def __init__(self, recon: "ReconConfig", device: Any, image_series_index: int = 1, dtype: str = "float") -> None:
        self.recon = recon
        self.device = device
        self.image_series_index = image_series_index
        self.dtype = dtype
        self._imager: "FrameImager | None" = None
        self._images_sent = 0

    def image(self, frame: GriddedFrame, geometry: OutputGeometry) -> ismrmrd.Image:
        """The image of ``frame`` on the output's ``geometry`` (see the class docstring)."""
        if self._imager is None:  # torch and the reconstruction load with the first frame
            from igrog_gadget.recon.images import FrameImager

            self._imager = FrameImager(self.recon, self.device)
        picture = self._imager.image(frame)
        region, fov = geometry.recon_region(picture.magnitude.shape)
        picture = dataclasses.replace(picture, magnitude=picture.magnitude[region])
        self._images_sent += 1
        return frame_image(frame, picture, fov, self._images_sent, self.image_series_index, self.dtype)
