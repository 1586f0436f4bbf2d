"""Per-point weights of a gridded frame as an ISMRMRD image series (``igrog_weights``).

Each grid point of the output averages from 0 to hundreds of samples: a Cartesian reconstruction
that weights its data term by that count (the noise variance of a point is the sample noise
variance over it) treats a densely sampled centre point and a lone edge sample as what they are.
The replay output holds one image per frame in the series ``igrog_weights``: float32 data
``(1, nz, ny, nx)`` (nz = 1 for a 2D frame), the number of samples averaged into each point of
the frame's Cartesian k-space (index ``[kz, ky, kx]`` as in the frame's lines: line
``(kspace_encode_step_1, kspace_encode_step_2) = (ky, kz)``, sample ``kx``); the header's slice,
contrast, phase, repetition, set and average counters and geometry are the frame's, its
``image_index`` the frame's number (1-based, in output order).
"""

from __future__ import annotations

import ismrmrd
import numpy as np

from igrog_gadget.scan import FRAME_COUNTER_FIELDS, GEOMETRY_FIELDS, GriddedFrame, ImageItem

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
    image = ismrmrd.Image.from_array(np.ascontiguousarray(data))
    head = image.getHead()
    head.version = 1
    head.data_type = ismrmrd.DATATYPE_FLOAT
    head.image_type = ismrmrd.IMTYPE_REAL
    head.matrix_size[:] = (data.shape[3], data.shape[2], data.shape[1])
    head.field_of_view[:] = tuple(float(v) for v in fov_mm)
    head.channels = 1
    head.image_index = int(image_index)
    head.image_series_index = WEIGHTS_SERIES_INDEX
    source = frame.template.source_header
    if isinstance(source, ismrmrd.AcquisitionHeader):
        for name in GEOMETRY_FIELDS:
            getattr(head, name)[:] = getattr(source, name)[:]
        head.measurement_uid = source.measurement_uid
    for name in FRAME_COUNTER_FIELDS:
        setattr(head, name, int(frame.template.idx.get(name, 0)))
    image.setHead(head)
    meta = {"SeriesName": WEIGHTS_SERIES, "IgrogWeights": "samples averaged into each grid point"}
    return ImageItem(series=WEIGHTS_SERIES, data=data, meta=meta, source=image)
