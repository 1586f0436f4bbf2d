"""Per-point weights of a gridded frame as an ISMRMRD image series (``igrog_weights``).

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

import ismrmrd
import numpy as np

from igrog_gadget.io.convert import frame_image_of
from igrog_gadget.scan import GriddedFrame, ImageItem

#: Name of the image series that holds the weights.
WEIGHTS_SERIES = "igrog_weights"
#: ``image_series_index`` of the weights images.
WEIGHTS_SERIES_INDEX = 99


def weights_image(frame: GriddedFrame, fov_mm: tuple[float, float, float], image_index: int) -> ImageItem:
    """The ``igrog_weights`` image of ``frame`` (see the module docstring).

    Args:
        frame: hits (ny, nx) or (nz, ny, nx).
        fov_mm: field of view (x, y, z) of the frame's grid.
        image_index: 1-based number of the frame in the output.
    """
    hits = np.asarray(frame.hits, dtype=np.float32)
    data = hits.reshape((1,) * (4 - hits.ndim) + hits.shape)  # (1, nz, ny, nx)
    image = frame_image_of(
        data, frame, fov_mm, image_index, WEIGHTS_SERIES_INDEX, ismrmrd.DATATYPE_FLOAT, ismrmrd.IMTYPE_REAL
    )
    meta = {"SeriesName": WEIGHTS_SERIES, "IgrogWeights": "samples averaged into each grid point"}
    return ImageItem(series=WEIGHTS_SERIES, data=data, meta=meta, source=image)
