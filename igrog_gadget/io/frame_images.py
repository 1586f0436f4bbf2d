"""Images the replay output carries beside the gridded k-space: per-point weights
(``igrog_weights``, ``[output] weights``) and the frames' images (``igrog_image``, ``--images``).

Each grid point of the output averages from 0 to hundreds of samples: a Cartesian reconstruction
that weights its data term by that count (the noise variance of a point is the sample noise
variance over it) treats a densely sampled centre point and a lone edge sample as what they are.
The replay output holds one image per frame in the series ``igrog_weights``: float32 data
``(1, nz, ny, nx)`` (nz = 1 for a 2D frame), the number of samples averaged into each point of
the frame's Cartesian k-space (index ``[kz, ky, kx]`` as in the frame's lines: line
``(kspace_encode_step_1, kspace_encode_step_2) = (ky, kz)``, sample ``kx``); the header's slice,
contrast, phase, repetition, set and average counters, geometry and time stamps are the frame's
(``igrog_gadget.io.convert.frame_image_of``), its ``image_index`` the frame's number (1-based, in
output order).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ismrmrd
import numpy as np

from igrog_gadget.io.convert import frame_image_of, image_data
from igrog_gadget.io.output_geometry import OutputGeometry
from igrog_gadget.scan import GriddedFrame, ImageItem

if TYPE_CHECKING:
    from igrog_gadget.recon.images import FrameImage

#: Name of the image series that holds the weights.
WEIGHTS_SERIES = "igrog_weights"
#: ``image_series_index`` of the weights images.
WEIGHTS_SERIES_INDEX = 99
#: Name and ``image_series_index`` of the frames' images (``igrog replay --images``).
IMAGE_SERIES = "igrog_image"
IMAGE_SERIES_INDEX = 1


def weights_image(frame: GriddedFrame, geometry: OutputGeometry, image_index: int) -> ImageItem:
    """The ``igrog_weights`` image of ``frame`` (see the module docstring).

    Args:
        frame: hits (ny, nx) or (nz, ny, nx).
        geometry: the output's geometry (the image's field of view is the frame grid's).
        image_index: 1-based number of the frame in the output.
    """
    data = image_data(np.asarray(frame.hits, dtype=np.float32))  # (1, nz, ny, nx)
    image = frame_image_of(
        data, frame, geometry.fov_mm, image_index, WEIGHTS_SERIES_INDEX, ismrmrd.DATATYPE_FLOAT, ismrmrd.IMTYPE_REAL
    )
    meta = {"SeriesName": WEIGHTS_SERIES, "IgrogWeights": "samples averaged into each grid point"}
    return ImageItem(series=WEIGHTS_SERIES, data=data, meta=meta, source=image)


def replay_image(frame: GriddedFrame, picture: "FrameImage", geometry: OutputGeometry, image_index: int) -> ImageItem:
    """The ``igrog_image`` image of ``frame``: its magnitude image ``picture`` (SENSE or RSS,
    ``igrog_gadget.recon.images``), float32 ``(1, nz, ny, nx)`` on the frame grid's FOV
    (``geometry.fov_mm``), header as the weights image's, image type MAGNITUDE; meta
    ``ImageProcessingHistory`` [IGROG, SENSE or RSS] and ``IgrogImageNote`` (why RSS stood in for SENSE)."""
    data = image_data(np.asarray(picture.magnitude, dtype=np.float32))  # (1, nz, ny, nx)
    image = frame_image_of(
        data, frame, geometry.fov_mm, image_index, IMAGE_SERIES_INDEX, ismrmrd.DATATYPE_FLOAT, ismrmrd.IMTYPE_MAGNITUDE
    )
    meta: dict = {"SeriesName": IMAGE_SERIES, "ImageProcessingHistory": ["IGROG", picture.method.upper()]}
    if picture.note:
        meta["IgrogImageNote"] = picture.note
    return ImageItem(series=IMAGE_SERIES, data=data, meta=meta, source=image)
